"""Bad inputs a new user tries (issue 11, items 5-7): each stops the run in one line.

Every case of ``CASES`` runs ``python -m iclx ...`` as a subprocess in its own scratch folder and
must exit non-zero with exactly one ``iclx:`` line on stderr (the expected text), no traceback
anywhere, no ``.partial`` folder in the cache, and, where the job started (a run folder exists),
``summary.json`` saying ``failed``. Errors found before Hydra starts (a malformed YAML file)
exit 2 and create no run folder; errors of a job exit 1.

The typo cases of item 5 are checked in-process, with the same assertions, by
``tests/test_validation.py``; ``REFERENCED`` lists them and a test keeps that list honest. Inputs
that degrade a run rather than stop it (a prompt longer than the context, a binary file in a
corpus, calibration against an unknown token) are capped or skipped with a warning: see
``tests/test_evaluate.py``, ``tests/test_data_sources.py`` and ``tests/test_scoring.py``.

``python -m pytest tests/test_bad_inputs.py -s`` prints the table: input | exit code | stderr line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_iclx

# --- the inputs ------------------------------------------------------------------------------------


def latin1_csv(tmp: Path) -> None:
    (tmp / "reviews.csv").write_bytes("text,label\nfine film,1\ncafé crème,0\n".encode("latin-1"))


def ragged_csv(tmp: Path) -> None:
    (tmp / "reviews.csv").write_text("text,label\nfine film,1\ngood, not great,1\nbad,0\n")


def one_file_csv(tmp: Path) -> None:
    (tmp / "reviews.csv").write_text("text,label\nfine film,1\nbad,0\n")


def corpus_with_a_binary(tmp: Path) -> None:
    (tmp / "corpus").mkdir()
    (tmp / "corpus" / "words.txt").write_text("a b c d\n" * 50)
    shutil.copy("/bin/ls", tmp / "corpus" / "ls.txt")  # a real executable that a *.txt glob caught


def latin1_corpus(tmp: Path) -> None:
    (tmp / "corpus").mkdir()
    (tmp / "corpus" / "notes.txt").write_bytes("first line\nsecond: crème brûlée\n".encode("latin-1"))


def malformed_experiment(tmp: Path) -> None:
    (tmp / "my_conf" / "experiment").mkdir(parents=True)
    (tmp / "my_conf" / "experiment" / "mine.yaml").write_text("# @package _global_\nstages: [evaluate\nseed: 1\n")


def malformed_selector(tmp: Path) -> None:
    (tmp / "my_conf" / "selector").mkdir(parents=True)
    (tmp / "my_conf" / "selector" / "mine.yaml").write_text("name: knn\n  nprobe: 4\n")


@dataclass(frozen=True)
class Case:
    input: str  # what the user typed or had on disk, as the table shows it
    args: tuple[str, ...]  # the command line; {bundle}: a saved model with an 8-token context
    line: str  # the one stderr line; {tmp}: the scratch folder
    exit_code: int = 1
    run_folder: bool = True  # the job started: run/summary.json must say failed
    setup: Callable[[Path], None] | None = None


EVALUATE = ("stages=[evaluate]", "hydra.run.dir=run")
CSV_TASK = ("task=csv", "task.pool=reviews.csv", "task.queries=reviews.csv")
TEXT_CORPUS = ("stages=[tokenize]", "hydra.run.dir=run", "data=text_files", "data.paths=corpus/*.txt")

CASES = [
    # item 5: Hydra tracebacks
    Case("seed=abc", ("seed=abc", *EVALUATE), "iclx: seed must be int, got str 'abc'"),
    Case(
        "a malformed YAML preset in a user config dir",
        ("--config-dir", "my_conf", "experiment=mine", *EVALUATE),
        "iclx: {tmp}/my_conf/experiment/mine.yaml: malformed YAML at line 3, column 5: expected ',' or ']', "
        "but got ':' (while parsing a flow sequence at line 2)",
        exit_code=2,
        run_folder=False,
        setup=malformed_experiment,
    ),
    Case(
        "a malformed YAML selector on hydra.searchpath",
        ("hydra.searchpath=[file://my_conf]", "selector=mine", *EVALUATE),
        "iclx: {tmp}/my_conf/selector/mine.yaml: malformed YAML at line 2, column 9: mapping values are not allowed here",
        exit_code=2,
        run_folder=False,
        setup=malformed_selector,
    ),
    # item 6: silent degradation that must be an error
    Case(
        "evaluate.shots=[2] where not one demonstration fits the context",
        (
            *EVALUATE,
            "pretrain.checkpoint={bundle}",
            "task=ginc",
            "task.n_queries=4",
            "task.pool_per_group=4",
            "evaluate.shots=[0,2]",
            "evaluate.selectors=[random]",
        ),
        "iclx: evaluate.shots: k=2: not even one demonstration fits in the 8-token context for 4 of 4 prompts "
        "(query ginc-query-id-0: 5 tokens, its best demonstration 6, the answer 1); lower k, shorten the template or use a longer context",
    ),
    Case("evaluate.num_queries=0", ("evaluate.num_queries=0", *EVALUATE), "iclx: evaluate.num_queries must be >= 1, got 0"),
    Case(
        "/bin/ls renamed .txt in a corpus, data.non_text=error",
        (*TEXT_CORPUS, "data.non_text=error"),
        "iclx: corpus/ls.txt: not a text file (it holds NUL bytes); remove it from data.paths, or set data.non_text=skip",
        setup=corpus_with_a_binary,
    ),
    # item 7: raw or misleading errors
    Case(
        "a Latin-1 CSV task file",
        (*EVALUATE, *CSV_TASK),
        "iclx: reviews.csv:3: not valid utf-8 at byte 3 of the line (0xe9); if the file is in another encoding, "
        "set task.encoding (e.g. task.encoding=latin-1)",
        setup=latin1_csv,
    ),
    Case(
        "a Latin-1 text corpus file, data.encoding_errors=strict",
        (*TEXT_CORPUS, "data.encoding_errors=strict"),
        "iclx: corpus/notes.txt:2: not valid utf-8 at byte 10 of the line (0xe8); if the file is in another encoding, "
        "set data.encoding (e.g. data.encoding=latin-1), else data.encoding_errors=replace or skip",
        setup=latin1_corpus,
    ),
    Case(
        "a ragged CSV row",
        (*EVALUATE, *CSV_TASK),
        "iclx: reviews.csv:3: row 2 has 3 fields, the header has 2 (text, label); quote fields that contain ','",
        setup=ragged_csv,
    ),
    Case(
        "task.pool left unset",
        (*EVALUATE, "task=csv", "task.queries=reviews.csv"),
        "iclx: task.pool is required by task 'csv': set it, e.g. task.pool=...",
        setup=one_file_csv,
    ),
    Case(
        "task.encoding=latin-9x",
        (*EVALUATE, *CSV_TASK, "task.encoding=latin-9x"),
        "iclx: task.encoding: unknown encoding 'latin-9x' (e.g. utf-8, latin-1, cp1252)",
        setup=one_file_csv,
    ),
]

# item 5's typos, checked in-process with the same assertions by tests/test_validation.py
REFERENCED = {
    "+pretrain.max_step=10": "iclx: pretrain has no key 'max_step' (pretrain.max_step).",
    "+evaluate.shot=[0]": "iclx: evaluate has no key 'shot' (evaluate.shot).",
    "+selector.topk=3": "iclx: selector 'random' has no parameter 'topk' (selector.topk). Its parameters: (none)",
    "+tokenizer.vocab_size=300": "iclx: tokenizer 'byte' has no parameter 'vocab_size' (tokenizer.vocab_size).",
    "model.n_layer=0": "iclx: model.n_layer must be positive, got 0",
    "model.d_model=65": "iclx: model.d_model (65) must be divisible by model.n_head (4)",
    "evaluate.shots=5": "iclx: evaluate.shots must be a list of int, got int 5",
    "seed=abc": "iclx: seed must be int, got str 'abc'",
}


# --- the checks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_context_bundle(tmp_path_factory) -> Path:
    """An untrained GPT whose context (8 tokens) cannot hold one GINC demonstration and a query."""
    import torch

    from iclx.data.ginc import ginc_documents
    from iclx.ginc import GincLanguage
    from iclx.models.bundle import save_model
    from iclx.registry import build

    folder = tmp_path_factory.mktemp("bundle")
    tokenizer = build("tokenizer", {"name": "word"})
    tokenizer.train(d.text for d in ginc_documents(GincLanguage(), 50, 200))
    torch.manual_seed(0)
    model = build("model", {"name": "gpt", "n_layer": 1, "n_head": 2, "d_model": 16, "max_seq_len": 8}, vocab_size=tokenizer.vocab_size)
    save_model(folder, model.eval(), tokenizer)
    return folder


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, short_context_bundle) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every case run once, a few at a time (each is mostly Python starting and importing), each
    in its own scratch folder: case input -> (folder, finished process)."""

    def run(case: Case) -> tuple[Path, subprocess.CompletedProcess]:
        folder = tmp_path_factory.mktemp("case")
        if case.setup is not None:
            case.setup(folder)
        args = [a.replace("{bundle}", str(short_context_bundle)) for a in case.args]
        return folder, run_iclx(folder, *args, timeout=300)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        done = dict(zip([c.input for c in CASES], pool.map(run, CASES)))
    print("\n| input | exit code | stderr line |\n|---|---|---|")
    for text, (_, result) in done.items():
        lines = [line for line in result.stderr.splitlines() if line.startswith("iclx:")]
        print(f"| {text} | {result.returncode} | `{' / '.join(lines) or '(none)'}` |")
    return done


@pytest.mark.parametrize("case", CASES, ids=[c.input for c in CASES])
def test_a_bad_input_stops_the_run_in_one_line(outcomes, case):
    tmp_path, result = outcomes[case.input]
    lines = [line for line in result.stderr.splitlines() if line.startswith("iclx:")]
    assert result.returncode == case.exit_code, result.stderr[-2000:]
    assert lines == [case.line.replace("{tmp}", str(tmp_path))]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert not list((tmp_path / "cache").rglob("*.partial"))
    summary = tmp_path / "run" / "summary.json"
    assert summary.is_file() == case.run_folder
    if case.run_folder:
        recorded = json.loads(summary.read_text())
        assert recorded["status"] == "failed" and "iclx: " + recorded["error"] == lines[0]


def test_referenced_typo_cases_are_checked_by_test_validation():
    from test_validation import CASES as VALIDATION_CASES

    checked = {" ".join(overrides[-1:]): line for overrides, line in VALIDATION_CASES}
    for override, start in REFERENCED.items():
        assert checked[override].startswith(start), override


def test_a_malformed_file_that_the_run_does_not_compose_does_not_stop_it(in_tmp, capsys):
    from iclx.cli import run_cli

    malformed_selector(in_tmp)  # my_conf/selector/mine.yaml, while the run uses selector=random
    assert run_cli(["--config-dir", "my_conf", "plugins=[iclx_test_plugin]", "stages=[echo]", "hydra.run.dir=run"]) == 0
    assert "iclx:" not in capsys.readouterr().err
