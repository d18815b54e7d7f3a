"""The README is executable (issue 9 item 2).

Every `iclx ...` command in the README (its fenced code blocks, the experiments table and the error
examples) is collected from README.md and run as written through `python -m iclx` (the console
script's module) in a subprocess from a scratch folder. The test only APPENDS size overrides it owns
(`SHRINK`: few steps, few queries, small data, fewer sweep jobs); the README command is parsed with
`shlex.split`, its `iclx` and trailing `# comment` stripped, and otherwise left unchanged. Each run
must exit 0 and write what the README says a run writes; each error example must fail and print the
README's line. A command that cannot run here is listed by name in `SKIPPED` with the reason, and
`test_every_readme_command_is_run_or_skipped` fails on a README command that is in neither, so docs
and tests cannot drift. `python -m pytest tests/test_readme_commands.py -s` prints the list.
"""

from __future__ import annotations

import csv
import glob
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import ROOT, run_iclx

README = ROOT / "README.md"
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")  # <date>_<time>


# --- collecting the README's commands -------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    text: str                   # as the README writes it, without a trailing comment
    args: tuple[str, ...]       # shlex-split, without the leading `iclx`
    error: str | None = None    # an error example: the line the README shows it printing


def readme_commands(text: str | None = None) -> list[Command]:
    """Every command in the README: lines of fenced blocks (the last `&&` part, so `pip install ...
    && iclx` is `iclx`; `$ iclx ...` lines of the error examples, with the line after as the expected
    error), and backticked `iclx ...` in table cells. In README order, each once."""
    text = README.read_text() if text is None else text
    found: dict[str, Command] = {}

    def add(raw: str, error: str | None = None) -> None:
        line = raw.split("&&")[-1].strip()
        if not re.match(r"(iclx|python -m pytest)(\s|$)", line):
            return
        clean = re.sub(r"\s+#.*$", "", line)   # a trailing `# comment` (no README command has a `#` in it)
        parts = shlex.split(clean, comments=True)
        args = tuple(parts[1:]) if parts[0] == "iclx" else tuple(parts)
        found.setdefault(clean, Command(clean, args, error))

    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang == "python":
            continue
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                nxt = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("$ ") else None
                add(line[2:], error=nxt)
            else:
                add(line)
    for row in re.findall(r"^\|.*\|$", text, flags=re.M):
        for cell in row.strip("|").split("|"):
            for cmd in re.findall(r"`(iclx(?:\s[^`]*)?)`", cell.strip()):
                add(cmd)
    return list(found.values())


# --- what cannot run here -------------------------------------------------------------------------

SKIPPED = {
    "python -m pytest": "the test run itself",
    "iclx stages=[evaluate] task=sst2 model=hf model.path=gpt2 tokenizer=pretrained tokenizer.path=gpt2":
        "needs a Hugging Face model (gpt2) on disk; the test environment is offline",
    "iclx trainer=gpu model=gpt_small": "needs a GPU (trainer=gpu)",
    "iclx -m launcher=slurm hydra.launcher.partition=gpu trainer=ddp trainer.devices=4 seed=0,1,2":
        "needs a Slurm cluster (and 4 GPUs per job)",
    "iclx curate=web 'curate.input.paths=/shared/crawl/*.warc.gz' curate/executor=slurm curate.executor.partition=cpu "
    "curate.executor.tasks=1000 paths.cache_dir=/shared/iclx-cache stages=[curate]":
        "needs a Slurm cluster and a crawl (tests/test_curate.py builds the Slurm jobs' scripts without one)",
}


# --- how each runnable command is shrunk, and what it must write ----------------------------------

# The quickstart family (GINC + word tokenizer + a GPT, then ICL): a few steps on a small corpus,
# few queries. Shots up to 16 stay possible (pool_per_group), so commands that choose shots keep them.
PRETRAIN = [
    "pretrain.max_steps=3", "pretrain.val_every=3", "pretrain.checkpoint_every=3", "pretrain.val_windows=2",
    "pretrain.batch_size=4", "pretrain.samples.n=1", "pretrain.samples.max_new_tokens=4",
    "trainer.enable_progress_bar=false",
]
WARMUP = ["optimizer.schedule.warmup_steps=1"]
EVAL = ["task.n_queries=10", "task.pool_per_group=16"]
SHOTS = ["evaluate.shots=[0,1]"]
QUICK = ["data.n_documents=200", *PRETRAIN, *WARMUP, *EVAL]
PROBE = ["probe.max_steps=3", "probe.batch_size=8", "probe.tune_tasks=256", "probe.eval_tasks=256"]
TEXT = ["tokenizer.vocab_size=300", *PRETRAIN, *WARMUP]
# a curation keeps its size (it is the point); the pre-training after it is a few steps
CURATE_PRETRAIN = ["pretrain.max_steps=3", "pretrain.val_every=3", "pretrain.checkpoint_every=3", "pretrain.val_windows=2",
                   "trainer.enable_progress_bar=false"]
# ginc_selectors' mixed pool, smaller; epr (in its selector list) reads the composed `selector` section
# when selector=epr, so that carries the smaller retriever training
SELECTORS_POOL = ["task.pool_size=60", "selector=epr", "selector.train_queries=16", "selector.candidates=8", "selector.steps=2"]


@dataclass
class Spec:
    shrink: list[str]
    out: str                                    # outputs/<out>/<stamp> or sweeps/<out>/<stamp>
    jobs: int = 0                               # a sweep (-m): its job count after shrinking; 0: one run
    files: tuple[str, ...] = ()                 # more files the README says the run writes
    slow: bool = False
    needs: tuple[str, ...] = ()                 # optional modules (extras) the command needs
    env: dict[str, str] = field(default_factory=dict)
    xfail: str | None = None


QS_FILES = ("evaluate_results.csv", "predictions.jsonl", "plots/evaluate_accuracy.png", "plots/pretrain_loss.png")

SPECS: dict[str, Spec] = {
    "iclx": Spec([*QUICK, *SHOTS], "quickstart", files=QS_FILES),
    "iclx experiment=icl_gd": Spec(PROBE, "icl_gd"),
    "iclx experiment=icl_gd_layers": Spec(PROBE, "icl_gd_layers"),
    "iclx experiment=pretrain_tiny": Spec(TEXT, "pretrain_tiny", files=("plots/pretrain_loss.png",), slow=True),
    "iclx experiment=ginc_icl": Spec([*QUICK, "task.pool_per_group=2", "evaluate.shots=[0,1]"], "ginc_icl", slow=True),
    "iclx experiment=ginc_selectors": Spec([*QUICK, *SELECTORS_POOL, *SHOTS], "ginc_selectors", slow=True, needs=("bm25s",)),
    # the sweep preset's selector x seed grid, narrowed on the command line (it replaces the preset's entries)
    "iclx -m experiment=ginc_selectors sweep=selectors": Spec(
        [*QUICK, "task.pool_size=60", *SHOTS, "selector=random,knn", "seed=0"], "selectors", jobs=2, slow=True, needs=("bm25s",)),
    # 1000 of its 64-word documents: a validation split of at least two 512-token windows
    "iclx -m experiment=clustered_icl sweep=orderings": Spec(
        ["data.n_documents=1000", *PRETRAIN, *WARMUP, *EVAL, *SHOTS, "data/order=random,iclm", "seed=0"],
        "orderings", jobs=2, slow=True),
    "iclx model=lstm": Spec([*QUICK, *SHOTS], "quickstart", files=QS_FILES, slow=True),
    "iclx selector=knn selector.embedder.name=lm": Spec([*QUICK, *SHOTS], "quickstart", files=QS_FILES, slow=True),
    # SST-2 on the bundled-text model: a few queries over a small pool; the shots stay as written, and
    # so does the vocabulary: with 300 tokens a long review and its demonstration overflow the context
    "iclx experiment=pretrain_tiny stages=[tokenize,pack,pretrain,evaluate] task=sst2 selector=knn evaluate.shots=[0,1,2] "
    "evaluate.calibration=true": Spec([*PRETRAIN, *WARMUP, "task.max_pool=200", "evaluate.num_queries=10"], "pretrain_tiny",
                                      files=QS_FILES, slow=True),
    "iclx experiment=pretrain_tiny optimizer=adafactor pretrain.max_steps=500": Spec(TEXT, "pretrain_tiny", slow=True),
    # the corpus the README points at is created in the scratch folder (see `_setup`)
    "iclx data=text_files 'data.paths=my_corpus/**/*.txt' tokenizer=bpe tokenizer.vocab_size=8000 stages=[tokenize,pack,pretrain]":
        Spec(["tokenizer.vocab_size=300", "model.max_seq_len=64", *PRETRAIN, *WARMUP], "quickstart",
             files=("plots/pretrain_loss.png",), slow=True),
    "iclx experiment=icl_gd probe.d=20 probe.n=40 trainer=debug": Spec([*PROBE, "trainer.max_steps=3"], "icl_gd"),
    "iclx -m experiment=icl_gd seed=0,1 probe.n=5,10": Spec(PROBE, "icl_gd", jobs=4),
    "iclx -m sweep=selectors": Spec([*QUICK, *SHOTS, "selector=random,knn", "seed=0"], "selectors", jobs=2, slow=True),
    "iclx -m launcher=joblib seed=0,1,2,3": Spec([*QUICK, *SHOTS, "seed=0,1"], "quickstart", jobs=2, slow=True,
                                                  needs=("hydra_plugins.hydra_joblib_launcher",)),
    "iclx -m launcher=local seed=0,1": Spec([*QUICK, *SHOTS, "seed=0"], "quickstart", jobs=1, slow=True,
                                            needs=("hydra_plugins.hydra_submitit_launcher",)),
    # Optuna's search space stays the preset's (lr, warmup, width): only the trial count shrinks
    "iclx -m sweep=optuna_quickstart": Spec(["data.n_documents=200", *PRETRAIN, *EVAL, "hydra.sweeper.n_trials=2"],
                                            "optuna_quickstart", jobs=2, files=("study.csv",), slow=True,
                                            needs=("hydra_plugins.hydra_optuna_sweeper",)),
    # "Bring your own task": the shipped example files on the bundled-text model, pre-trained a few
    # steps; shots, vocabulary and context stay as written (the news prompts need the 2k BPE to fit)
    **{cmd: Spec([*PRETRAIN, *WARMUP], "pretrain_tiny", files=QS_FILES, slow=True) for cmd in (
        "iclx experiment=pretrain_tiny stages=[tokenize,pack,pretrain,evaluate] evaluate.selectors=[random,knn] evaluate.shots=[0,2] "
        "task=label_text task.pool=package:examples/questions/train.txt task.queries=package:examples/questions/test.txt "
        "\"task.label_pattern='^(\\w+):\\S+'\" 'task.verbalizer={ABBR: abbreviation, DESC: description, ENTY: entity, HUM: person, "
        "LOC: location, NUM: number}'",
        "iclx experiment=pretrain_tiny stages=[tokenize,pack,pretrain,evaluate] evaluate.selectors=[random,knn] evaluate.shots=[0,2] "
        "task=csv task.pool=package:examples/news/train.csv task.queries=package:examples/news/test.csv "
        "\"task.doc_to_text='{{Title}}. {{Description}}'\" 'task.label_field=Class Index' "
        "'task.verbalizer={1: World, 2: Sports, 3: Business, 4: Technology}'",
        "iclx experiment=pretrain_tiny stages=[tokenize,pack,pretrain,evaluate] evaluate.selectors=[random,knn] evaluate.shots=[0,2] "
        "task=jsonl task.pool=package:examples/quiz/train.jsonl task.queries=package:examples/quiz/test.jsonl "
        "\"task.doc_to_text='{{question}} A: {{choices[0]}} B: {{choices[1]}} C: {{choices[2]}} D: {{choices[3]}}'\" "
        "\"task.doc_to_target='{{answer}}'\" 'task.doc_to_choice=[A,B,C,D]'",
    )},
    # a curation (iclx[curate]) of the shipped sample, then a few training steps
    "iclx experiment=curate_quickstart": Spec(CURATE_PRETRAIN, "curate_quickstart",
                                              files=("curate_steps.csv", "plots/curate_funnel.png", "dropped/logs.jsonl",
                                                     "near_threshold/language.jsonl"), needs=("datatrove",)),
    "iclx curate=web 'curate.input.paths=crawl/*.warc.gz' stages=[curate]": Spec(
        [], "quickstart", files=("curate_steps.csv", "plots/curate_funnel.png", "dropped/extract.jsonl"), needs=("datatrove",)),
    "iclx experiment=curate_quickstart curate.steps.logs.mode=line 'curate.steps.quality={threshold: 0.3}'": Spec(
        CURATE_PRETRAIN, "curate_quickstart", files=("near_threshold/quality.jsonl",), slow=True, needs=("datatrove",)),
    "iclx experiment=curate_quickstart curate.executor.tasks=4 curate.executor.workers=2": Spec(
        CURATE_PRETRAIN, "curate_quickstart", files=("curate_steps.csv",), slow=True, needs=("datatrove",)),
    "iclx -m experiment=curation_effect sweep=curation_effect": Spec(
        [*CURATE_PRETRAIN, "seed=0"], "curation_effect", jobs=2, slow=True, needs=("datatrove",)),
    # W&B offline (no credentials here): the run's W&B files land in the run folder for `wandb sync`
    "iclx experiment=icl_gd logger=wandb logger.wandb.project=my-project": Spec(
        PROBE, "icl_gd", slow=True, needs=("wandb",), env={"WANDB_MODE": "offline"}),
}
# `iclx report` needs a sweep in the scratch folder first: it runs the README's icl_gd sweep (shrunk)
REPORT = "iclx report sweeps/icl_gd/* --out reports/icl_gd --metric probe/loss_ratio"
REPORT_SETUP = "iclx -m experiment=icl_gd seed=0,1 probe.n=5,10"
# `iclx cache ...` needs a cache: the README's quickstart, shrunk and without evaluate, fills one
CACHE_SETUP = ["stages=[tokenize,pack,pretrain]", *QUICK]
# `iclx rescore outputs/quickstart/<date>_<time>`: the README's quickstart (shrunk) makes that folder
RESCORE_SETUP = [*QUICK, *SHOTS]
# subcommands with a test of their own below (each needs something made first)
COMMANDS = (("report",), ("cache",), ("export",), ("rescore",))


def _commands() -> list[Command]:
    return readme_commands()


def _params(kind: str) -> list:
    out = []
    for cmd in _commands():
        if cmd.text in SKIPPED:
            continue
        if kind == "error" and cmd.error is not None:
            out.append(pytest.param(cmd, id=cmd.text))
        elif kind == "report" and cmd.args[:1] == ("report",):
            out.append(pytest.param(cmd, id=cmd.text))
        elif kind == "run" and cmd.error is None and cmd.args[:1] not in COMMANDS and cmd.text in SPECS:
            spec = SPECS[cmd.text]
            marks = [pytest.mark.slow] if spec.slow else []
            if spec.xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=spec.xfail))
            out.append(pytest.param(cmd, spec, id=cmd.text, marks=marks))
    return out


# --- the checks -----------------------------------------------------------------------------------

def _stamped(folder: Path) -> Path:
    assert folder.is_dir(), f"{folder} was not written"
    runs = [p for p in folder.iterdir() if p.is_dir() and STAMP.fullmatch(p.name)]
    assert len(runs) == 1, f"expected one <date>_<time> folder under {folder}, found {sorted(p.name for p in folder.iterdir())}"
    return runs[0]


def _check_run(run_dir: Path, files: tuple[str, ...] = ()) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok", summary
    for name in ("metrics.csv", ".hydra/config.yaml", ".hydra/overrides.yaml", "iclx.log", *files):
        assert (run_dir / name).exists(), f"{run_dir} lacks {name}"
    assert list((run_dir / "plots").glob("*.png")), f"{run_dir}/plots has no PNG"


def _check_sweep(sweep_dir: Path, jobs: int) -> list[dict]:
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert len(rows) == jobs, rows
    assert all(r["status"] == "ok" for r in rows), rows
    assert (sweep_dir / "summary.png").stat().st_size > 1000
    return rows


def _setup(tmp: Path, cmd: Command) -> None:
    if "curate.input.paths=crawl/*.warc.gz" in cmd.args:  # a crawl: the shipped sample's pages as one WARC file
        from warcio.statusandheaders import StatusAndHeaders
        from warcio.warcwriter import WARCWriter

        (tmp / "crawl").mkdir()
        with open(tmp / "crawl" / "part-0.warc.gz", "wb") as f:
            writer = WARCWriter(f, gzip=True)
            for page in sorted((ROOT / "iclx" / "resources" / "curate_sample" / "pages").glob("*.html")):
                headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
                with open(page, "rb") as payload:
                    writer.write_record(writer.create_warc_record(f"https://example.org/{page.name}", "response",
                                                                  payload=payload, http_headers=headers))
    if "data.paths=my_corpus/**/*.txt" in cmd.args:  # the user's corpus: a few files in nested folders
        corpus = ROOT / "iclx" / "resources" / "corpus"
        for i, src in enumerate(sorted(corpus.glob("*.txt"))):
            paras = [p for p in src.read_text().split("\n\n") if p.strip()][:120]
            for j in range(0, len(paras), 20):
                dest = tmp / "my_corpus" / f"part{i}" / f"doc{j // 20}.txt"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text("\n\n".join(paras[j:j + 20]) + "\n")


@pytest.mark.parametrize(("cmd", "spec"), _params("run"))
def test_readme_command_runs(tmp_path, cmd, spec):
    for module in spec.needs:
        pytest.importorskip(module)
    _setup(tmp_path, cmd)
    proc = run_iclx(tmp_path, *cmd.args, *spec.shrink, **spec.env)
    assert proc.returncode == 0, f"{cmd.text} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    if spec.jobs:
        sweep_dir = _stamped(tmp_path / "sweeps" / spec.out)
        _check_sweep(sweep_dir, spec.jobs)
        for f in spec.files:
            assert list(sweep_dir.parent.glob(f)) or (sweep_dir / f).exists(), f"{cmd.text}: no {f}"
        for job in sorted(p for p in sweep_dir.iterdir() if (p / "summary.json").exists()):
            _check_run(job)
        assert "iclx: sweep summary" in proc.stdout
    else:
        run_dir = _stamped(tmp_path / "outputs" / spec.out)
        _check_run(run_dir, spec.files)
        if spec.env.get("WANDB_MODE") == "offline":
            assert list(run_dir.glob("wandb/offline-run-*")), f"{run_dir}: no wandb/offline-run-* to sync"


@pytest.mark.parametrize("cmd", _params("report"))
def test_readme_report_command(tmp_path, cmd):
    setup = SPECS[REPORT_SETUP]
    proc = run_iclx(tmp_path, *shlex.split(REPORT_SETUP)[1:], *setup.shrink)
    assert proc.returncode == 0, proc.stderr[-5000:]
    args = []
    for a in cmd.args:  # the shell's glob, in the scratch folder
        args += sorted(str(Path(p)) for p in glob.glob(a, root_dir=tmp_path)) if any(c in a for c in "*?[") else [a]
    proc = run_iclx(tmp_path, *args)
    assert proc.returncode == 0, f"{cmd.text}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    out = tmp_path / "reports" / "icl_gd"
    rows = _check_sweep(out, 4)
    assert all(float(r["probe/loss_ratio"]) > 0 for r in rows)
    assert "probe/loss_ratio" in proc.stdout


def test_readme_cache_commands(tmp_path):
    """Every `iclx cache ...` line of the README, in order, on the cache of a (shrunk) quickstart."""
    commands = [c for c in _commands() if c.args[:1] == ("cache",)]
    assert len(commands) >= 3, [c.text for c in commands]
    proc = run_iclx(tmp_path, *CACHE_SETUP)
    assert proc.returncode == 0, proc.stderr[-5000:]
    for cmd in commands:
        proc = run_iclx(tmp_path, *cmd.args)
        assert proc.returncode == 0, f"{cmd.text}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        if cmd.args[1] == "ls":
            assert all(f"{kind} " in proc.stdout for kind in ("tokenizer", "pack", "pretrain")), proc.stdout
        if cmd.args[1] == "verify":
            assert "0 damaged" in proc.stdout, proc.stdout
        if cmd.args[1] == "gc":  # nothing is broken or old here: everything stays
            assert "0 artifacts, 0 B freed" in proc.stdout, proc.stdout


def test_readme_export_command_and_snippet(tmp_path, monkeypatch):
    """`iclx export` on the run folder of a (shrunk) quickstart, as the README writes it, then the
    README's Python snippet loads the folder with transformers: its logits are iclx's (1e-4)."""
    transformers = pytest.importorskip("transformers")
    import torch

    from iclx.models.bundle import load_model

    commands = [c for c in _commands() if c.args[:1] == ("export",)]
    assert commands, "the README shows no iclx export"
    proc = run_iclx(tmp_path, *CACHE_SETUP)
    assert proc.returncode == 0, proc.stderr[-5000:]
    run_dir = _stamped(tmp_path / "outputs" / "quickstart")
    artifact = Path(json.loads((run_dir / "summary.json").read_text())["artifacts"]["pretrain"])
    snippets = [b for b in re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M) if "from_pretrained" in b]
    assert len(snippets) == 1
    for cmd in commands:
        args = [a.replace("<date>_<time>", run_dir.name) for a in cmd.args]
        proc = run_iclx(tmp_path, *args)
        assert proc.returncode == 0, f"{cmd.text}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert f"exported {artifact} (gpt" in proc.stdout and "max |logit difference|" in proc.stdout, proc.stdout
        monkeypatch.chdir(tmp_path)
        loaded: dict = {}
        exec(snippets[0], loaded)  # the README's own lines, from the scratch folder
        assert isinstance(loaded["model"], transformers.PreTrainedModel)
        model, tokenizer = load_model(artifact)
        ids = [tokenizer.eos_id, *tokenizer.encode("x1 x2 x3 / x4 x5 x6")]
        assert loaded["tokenizer"]("x1 x2 x3 / x4 x5 x6")["input_ids"] == ids[1:]
        with torch.no_grad():
            diff = (model(torch.tensor([ids])) - loaded["model"](input_ids=torch.tensor([ids])).logits).abs().max()
        assert float(diff) <= 1e-4
    # a run written before summary.json named its artifacts: traced through its config and the cache
    summary = json.loads((run_dir / "summary.json").read_text())
    del summary["artifacts"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    proc = run_iclx(tmp_path, "export", str(run_dir), "traced")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"exported {artifact} " in proc.stdout


def test_readme_rescore_commands(tmp_path):
    """Every `iclx rescore ...` line of the README on the run folder of a (shrunk) quickstart."""
    commands = [c for c in _commands() if c.args[:1] == ("rescore",)]
    assert commands
    proc = run_iclx(tmp_path, *RESCORE_SETUP)
    assert proc.returncode == 0, proc.stderr[-5000:]
    run_dir = _stamped(tmp_path / "outputs" / "quickstart")
    for cmd in commands:
        args = [str(run_dir) if a == "outputs/quickstart/<date>_<time>" else a for a in cmd.args]
        proc = run_iclx(tmp_path, *args)
        assert proc.returncode == 0, f"{cmd.text}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "accuracy_low" in proc.stdout and list(run_dir.glob("evaluate_rescored_*.csv")), proc.stdout


@pytest.mark.parametrize("cmd", _params("error"))
def test_readme_error_example(tmp_path, cmd):
    proc = run_iclx(tmp_path, *cmd.args)
    assert proc.returncode != 0, f"{cmd.text} exited 0"
    assert cmd.error.strip() in proc.stderr.splitlines(), f"{cmd.text}: expected {cmd.error!r}, got\n{proc.stderr[-3000:]}"


def test_every_readme_command_is_run_or_skipped():
    """A command added to the README must be given a shrink here (or a reason it cannot run)."""
    commands = _commands()
    assert len(commands) > 20, [c.text for c in commands]
    texts = {c.text for c in commands}
    handled = {c.text for c in commands if c.error is not None or c.args[:1] in COMMANDS} | set(SPECS) | set(SKIPPED)
    missing = sorted(texts - handled)
    assert not missing, f"README commands neither run nor SKIPPED: {missing}"
    stale = sorted((set(SPECS) | set(SKIPPED)) - texts)
    assert not stale, f"no longer in the README: {stale}"
    assert REPORT_SETUP in texts and REPORT in texts
    print("\nREADME commands run:")
    for c in commands:
        if c.text not in SKIPPED:
            kind = "error example" if c.error else "slow" if c.text in SPECS and SPECS[c.text].slow else "fast"
            print(f"  [{kind}] {c.text}")
    print("README commands skipped:")
    for c in commands:
        if c.text in SKIPPED:
            print(f"  {c.text}: {SKIPPED[c.text]}")


def test_collector_reads_blocks_tables_and_error_examples():
    text = (
        "| a | b |\n|---|---|\n| `iclx experiment=x` | y |\n\n"
        "```bash\npip install . && iclx   # run it\niclx -m a=1,2 'b=c/**/*.txt'  # two\n```\n\n"
        "```\n$ iclx selector=knm\niclx: unknown selector 'knm'\n```\n"
        "```python\niclx = 1\n```\n"
    )
    got = [(c.text, c.args, c.error) for c in readme_commands(text)]
    assert got == [
        ("iclx", (), None),
        ("iclx -m a=1,2 'b=c/**/*.txt'", ("-m", "a=1,2", "b=c/**/*.txt"), None),
        ("iclx selector=knm", ("selector=knm",), "iclx: unknown selector 'knm'"),
        ("iclx experiment=x", ("experiment=x",), None),
    ]
