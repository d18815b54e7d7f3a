"""Curation before pre-training (issue 13): the `curate` artifact in the lineage, its config checked
before anything runs, and a curation of the shipped sample read by tokenize."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from iclx import lineage
from iclx.cli import run_cli
from iclx.lineage import Lineage

from conftest import compose_config, read_summary

SAMPLE = Path(lineage.__file__).resolve().parent / "resources" / "curate_sample"

def test_a_curation_is_upstream_of_the_corpus_and_keyed_by_what_changes_its_output():
    base = ["experiment=curate_quickstart"]
    cfg = compose_config(base)
    material = Lineage(cfg).material("corpus")
    assert material["upstream"] == {"curate": Lineage(cfg).key("curate")}
    assert material["config"] == {"validation": {"fraction": 0.1, "seed": 0}}
    curate = Lineage(cfg).material("curate")["config"]
    assert "executor" not in curate["curate"] and curate["tasks"] == 1
    assert len(curate["fingerprint"]) == len(list((SAMPLE / "pages").glob("*.html"))) + 1

    def key(*overrides: str) -> str:
        return Lineage(compose_config([*base, *overrides])).key("tokenizer")

    assert key("curate.executor.workers=2") == key()  # where it runs does not change what it makes
    assert key("curate.executor.tasks=2") != key()  # the shards decide which copy of a duplicate is kept
    assert key("curate.steps.language.threshold=0.7") != key()
    assert key("curate.steps.quality=null") == key()  # off, in the preset or absent: the same
    assert key("data.validation.fraction=0.2") != key() and Lineage(compose_config([*base, "data.validation.fraction=0.2"])).key("curate") == Lineage(cfg).key("curate")


def _bad(in_tmp, capsys, *overrides: str) -> list[str]:
    code = run_cli(["curate=web", "stages=[curate]", *overrides, f"hydra.run.dir={in_tmp}/run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert not (in_tmp / "cache").exists()
    assert "stages" not in read_summary(in_tmp / "run")
    return err[0]


@pytest.mark.parametrize(("overrides", "line"), [
    (["+curate.steps.dedupe={}"], "iclx: unknown curate_step 'dedupe' (curate.steps.dedupe.name). Known: {steps}"),
    (["+curate.steps.language.treshold=0.5"],
     "iclx: curate_step 'language' has no parameter 'treshold' (curate.steps.language.treshold). Its parameters: languages, "
     "threshold, chars (did you mean 'threshold'?)"),
    (["curate.steps.language.threshold=1.5"], "iclx: curate.steps.language.threshold must be <= 1.0, got 1.5"),
    (["curate.steps.minhash_dedup.buckets=0"], "iclx: curate.steps.minhash_dedup.buckets must be >= 1, got 0"),
    (["curate.steps.token_outliers.top_fraction=0.1"],
     "iclx: curate.steps.token_outliers: set exactly one of threshold and top_fraction (the other null)"),
    (["+curate.steps.heuristics.gopher_quality.min_doc_wordz=3"],
     "iclx: heuristics filter 'gopher_quality' has no parameter 'min_doc_wordz' (curate.steps.heuristics.gopher_quality.min_doc_wordz). "
     "Its parameters: min_doc_words, max_doc_words, min_avg_word_length, max_avg_word_length, max_symbol_word_ratio, "
     "max_bullet_lines_ratio, max_ellipsis_lines_ratio, max_non_alpha_words_ratio, min_stop_words, stop_words (did you mean 'min_doc_words'?)"),
    (["curate.input.paths=no_such_folder"], "iclx: curate.input.paths: no_such_folder does not exist"),
    (["curate.input.paths=crawl/*.warc.gz"], "iclx: curate.input.paths: 'crawl/*.warc.gz' matches no file"),
    (["curate/executor=local", "curate.executor.workers=0"], "iclx: curate.executor.workers must be >= 1, got 0"),
])
def test_a_bad_curate_config_is_one_line_before_anything_runs(in_tmp, capsys, overrides, line):
    pytest.importorskip("datatrove")
    from iclx import registry

    assert _bad(in_tmp, capsys, *overrides) == line.format(steps=", ".join(registry.known("curate_step")))


def test_an_input_of_another_format_names_the_file(in_tmp, capsys):
    (in_tmp / "crawl").mkdir()
    (in_tmp / "crawl" / "a.html").write_text("<html><body><p>x</p></body></html>")
    (in_tmp / "notes.pdf").write_bytes(b"%PDF-1.4")
    assert _bad(in_tmp, capsys, "curate.input.paths=[crawl,notes.pdf]") == (
        "iclx: curate.input.paths: notes.pdf is not an HTML, WARC or JSONL file (.html, .htm, .warc, .warc.gz, .jsonl, .jsonl.gz)")
    (in_tmp / "empty").mkdir()
    assert _bad(in_tmp, capsys, "curate.input.paths=empty").startswith("iclx: curate.input.paths: the folder empty holds no .html/")


def test_without_the_extra_a_curation_says_what_to_install(in_tmp, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datatrove" else real(name, *a))
    assert _bad(in_tmp, capsys) == 'iclx: curate needs the optional extra (datatrove not installed): pip install "iclx[curate]"'


def _rows(run_dir: Path) -> dict[str, dict[str, str]]:
    with open(run_dir / "curate_steps.csv") as f:
        return {r["step"]: r for r in csv.DictReader(f)}


def _curated(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted((folder / "curated").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                r = json.loads(line)
                out[r["id"]] = r["text"]
    return out


def test_the_quickstart_sample_is_curated_shown_and_read_by_tokenize(in_tmp):
    pytest.importorskip("datatrove")
    assert run_cli(["experiment=curate_quickstart", "stages=[curate,tokenize]", "curate.ledger=true", "hydra.run.dir=first"]) == 0
    run = in_tmp / "first"
    rows = _rows(run)
    assert list(rows) == ["read", "extract", "logs", "language", "token_outliers", "heuristics", "exact_dedup", "minhash_dedup"]
    previous = None
    for step, row in rows.items():  # each step starts with what the one before kept
        if previous is not None:
            assert int(row["docs_in"]) == int(previous["kept"]), step
        assert int(row["docs_in"]) == int(row["kept"]) + int(row["dropped"]), step
        previous = row
    assert int(rows["read"]["docs_in"]) == 46 + 32  # pages (six crawled twice) + JSONL records
    truth = {json.loads(line)["id"]: json.loads(line) for line in (SAMPLE / "truth.jsonl").read_text().splitlines()}
    (folder,) = (in_tmp / "cache" / "curate").glob("*/report.json")
    folder = folder.parent
    ledger = {step: dict(tuple(json.loads(line)) for line in (folder / "ledger" / f"{step}.jsonl").read_text().splitlines())
              for step in rows}
    dropped_logs = {i for i, r in ledger["logs"].items() if r}
    assert dropped_logs == {i for i in ledger["logs"] if truth[i]["kind"] == "log"} and len(dropped_logs) == 12
    curated = _curated(folder)
    assert not any(truth[i]["kind"] in ("log", "base64", "numbers", "spam") for i in curated)
    groups = [truth[i]["group"] for i in curated]
    assert len(groups) == len(set(groups)), "two copies of one page were kept"
    assert curated and not any("cookie" in t.lower() or "All rights reserved" in t for t in curated.values())
    # what users read: samples of every drop, near-threshold documents, datatrove's statistics
    sample = [json.loads(line) for line in (run / "dropped" / "logs.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in sample} == {"log_lines"} and all(truth[r["id"]]["kind"] == "log" for r in sample)
    near = [json.loads(line) for line in (run / "near_threshold" / "language.jsonl").read_text().splitlines()]
    assert near and all(r["margin"] >= 0 for r in near) and near == sorted(near, key=lambda r: r["margin"])
    assert len(list((run / "datatrove_stats").glob("*.json"))) >= 7
    assert (run / "plots" / "curate_funnel.png").stat().st_size > 5000
    summary = read_summary(run)
    assert summary["stages"]["curate"]["documents_out"] == len(curated)
    assert summary["stages"]["tokenize"]["vocab_size"] == 1024
    # a second run reuses the artifact
    assert run_cli(["experiment=curate_quickstart", "stages=[curate]", "curate.ledger=true", "hydra.run.dir=second"]) == 0
    assert "reusing curate artifact" in (in_tmp / "second" / "iclx.log").read_text()


def test_per_document_failures_are_dropped_as_error_and_the_rest_goes_on(in_tmp):
    pytest.importorskip("datatrove")
    pages = in_tmp / "crawl"
    pages.mkdir()
    text = "This is a sentence of a page about the history of the town and its people. " * 20
    (pages / "good.html").write_text(f"<html><body><article><p>{text}</p></article></body></html>")
    (pages / "latin1.html").write_bytes(f"<html><head><meta charset='iso-8859-1'></head><body><p>Grüße aus Köln. {text}</p></body></html>".encode("latin-1"))
    with open(pages / "records.jsonl", "w") as f:
        f.write(json.dumps({"text": "a fine record " + text}) + "\n")
        f.write("{this is not json\n")
        f.write(json.dumps({"body": "no text field"}) + "\n")
        f.write(json.dumps({"text": "BOOM " + text}) + "\n")
    steps = "curate.order=[extract,explode,exact_dedup]"
    assert run_cli(["plugins=[iclx_test_plugin]", "curate=web", steps, "curate.input.paths=crawl", "stages=[curate]",
                    "hydra.run.dir=run"]) == 0
    rows = _rows(in_tmp / "run")
    assert list(rows) == ["read", "extract", "explode", "exact_dedup"]
    assert rows["read"]["dropped_by_reason"] == "error=2" and rows["read"]["kept"] == "4"
    assert rows["explode"]["dropped_by_reason"] == "error=1" and rows["explode"]["kept"] == "3"
    (report,) = (in_tmp / "cache" / "curate").glob("*/report.json")
    steps_report = {s["label"]: s for s in json.loads(report.read_text())["steps"]}
    assert steps_report["read"]["errors"][0].startswith("records.jsonl:2: ")
    assert steps_report["explode"]["errors"] == ["records.jsonl:4: RuntimeError: the step broke on this document"]
    curated = _curated(report.parent)
    assert any("Grüße aus Köln" in t for t in curated.values())  # decoded as its charset says


def test_a_warc_file_and_the_data_source_are_inputs_too(in_tmp):
    pytest.importorskip("datatrove")
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(in_tmp / "crawl.warc.gz", "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for page in sorted((SAMPLE / "pages").glob("page00*.html"))[:3]:
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(f"https://example.org/{page.name}", "response",
                                                          payload=open(page, "rb"), http_headers=headers))
        writer.write_record(writer.create_warc_record("https://example.org/robots.txt", "resource", payload=io.BytesIO(b"User-agent: *"),
                                                      warc_content_type="text/plain"))
    steps = "curate.order=[extract,exact_dedup]"
    assert run_cli(["curate=web", steps, "curate.input.paths=crawl.warc.gz", "stages=[curate]", "hydra.run.dir=warc"]) == 0
    assert _rows(in_tmp / "warc")["extract"]["kept"] == "3"
    # paths: null curates the `data` source (here the bundled corpus, whose copies are few)
    assert run_cli(["curate=web", "data=bundled", "curate.order=[exact_dedup]", "stages=[curate,tokenize]",
                    "tokenizer=char", "hydra.run.dir=data"]) == 0
    rows = _rows(in_tmp / "data")
    assert int(rows["read"]["docs_in"]) > 2000 and int(rows["exact_dedup"]["kept"]) > 2000


def test_executor_presets_compose_and_build_without_a_cluster(tmp_path):
    pytest.importorskip("datatrove")
    from iclx import registry
    from iclx.config_check import validate_config
    from iclx.curate.steps.base import Stage
    from iclx.errors import ConfigError

    cfg = compose_config(["experiment=curate_quickstart", "curate/executor=slurm", "curate.executor.partition=cpu",
                          "curate.executor.tasks=100", "curate.executor.sbatch_args={account: lab}"])
    validate_config(cfg)
    slurm = registry.build("curate_executor", cfg.curate.executor, key="curate.executor")
    stages = [Stage("a.input", []), Stage("a.find", [], tasks=1), Stage("output", [])]
    built = slurm.executors(stages, tmp_path)
    assert [e.tasks for e in built] == [100, 1, 100] and {e.partition for e in built} == {"cpu"}
    assert built[1].depends is built[0] and built[2].depends is built[1]
    script = built[2].get_launch_file_contents(built[2].get_sbatch_args(100), "launch_pickled_pipeline executor.pik")
    assert "#SBATCH --partition=cpu" in script and "#SBATCH --account=lab" in script and "#SBATCH --array=0-99" in script
    assert built[2].job_name == "iclx_curate_02_output" and built[2].logging_dir.path.endswith("logs/02_output")
    with pytest.raises(ConfigError, match=r"^curate.executor.partition is required by curate_executor 'slurm': set it"):
        registry.build("curate_executor", compose_config(["curate/executor=slurm"]).curate.executor, key="curate.executor")
    cfg = compose_config(["experiment=curate_quickstart", "curate/executor=ray", "curate.executor.tasks=8"])
    validate_config(cfg)
    ray = registry.build("curate_executor", cfg.curate.executor, key="curate.executor")
    assert [e.tasks for e in ray.executors(stages, tmp_path)] == [8, 1, 8]


def test_the_log_classifier_marks_machine_lines_not_prose():
    from iclx.curate.steps.logs import machine_lines

    log = [
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
        "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
        "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63}",
        "\tat com.example.billing.Pool.borrow(Pool.java:120)",
        'Traceback (most recent call last):',
        '  File "train.py", line 12, in <module>',
    ]
    prose = [
        "The history of the town goes back to 1204, when a small abbey was built on the river.",
        "On 3 March 2019 at 10:45 the council met again; the mayor said the bridge would open in May.",
        "Error messages are a common sight: the word ERROR alone does not make a log line.",
        "Visit www.example.org for tickets (adults 12.50, children 6.00).",
    ]
    assert machine_lines("\n".join(log)) == [True] * len(log)
    assert machine_lines("\n".join(prose)) == [False] * len(prose)


def test_the_curation_effect_arms_differ_only_in_curation_and_validate_on_the_same_text():
    pytest.importorskip("datatrove")
    from iclx.config_check import validate_config
    from iclx.curate.pipeline import heldout_validation

    arms = {arm: compose_config(["experiment=curation_effect", f"curate={arm}"]) for arm in ("raw", "web")}
    for cfg in arms.values():
        validate_config(cfg)
    from iclx import registry

    steps = {arm: [label for label, _ in registry.build("curate", cfg.curate, exclude=("executor",)).steps()] for arm, cfg in arms.items()}
    assert steps == {"raw": ["extract", "decontaminate"], "web": ["extract", "logs", "language", "token_outliers", "heuristics",
                                                                  "exact_dedup", "minhash_dedup", "decontaminate"]}
    assert Lineage(arms["raw"]).key("curate") != Lineage(arms["web"]).key("curate")
    raw, web = (heldout_validation(cfg) for cfg in arms.values())
    assert [d.text for d in raw] == [d.text for d in web] and len(raw) == 5
    assert {k: v for k, v in Lineage(arms["raw"]).material("pretrain")["config"].items()} == Lineage(arms["web"]).material("pretrain")["config"]
