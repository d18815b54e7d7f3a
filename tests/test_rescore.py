"""``iclx rescore``: an evaluate run's table from its saved scores, equal to the run's own, and the
calibrated table without the model, equal to a calibrated run's."""

from __future__ import annotations

import csv
import json

import pytest

from iclx.cli import run_cli
from iclx.commands import dispatch

from conftest import read_summary

SMALL = [
    "data.n_documents=200", "pretrain.max_steps=20", "pretrain.val_every=20", "pretrain.checkpoint_every=20",
    "pretrain.val_windows=2", "pretrain.batch_size=4", "optimizer.schedule.warmup_steps=1", "task.n_queries=40",
    "task.pool_per_group=8", "evaluate.shots=[0,2,4]", "trainer.enable_progress_bar=false",
]


def table(path) -> list[tuple]:
    return [(r["line"], int(r["k"]), float(r["accuracy"]), float(r["macro_f1"])) for r in csv.DictReader(open(path))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("rescore")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("ICLX_CACHE_DIR", str(work / "cache"))
        mp.setenv("WANDB_MODE", "disabled")
        for name, extra in (("plain", []), ("calibrated", ["evaluate.calibration=true"])):
            assert run_cli([*SMALL, *extra, f"hydra.run.dir={work / name}"]) == 0, read_summary(work / name).get("error")
    return work


def test_rescore_reproduces_the_runs_table_exactly(runs, capsys):
    assert dispatch(["rescore", str(runs / "plain")]) == 0
    out = capsys.readouterr().out
    assert "calibration off, normalization sum" in out
    rescored = table(runs / "plain" / "evaluate_rescored_uncalibrated_sum.csv")
    assert rescored == table(runs / "plain" / "evaluate_results.csv") and len(rescored) == 6


def test_rescore_calibrates_without_the_model_as_a_calibrated_run_does(runs, capsys):
    assert dispatch(["rescore", str(runs / "plain"), "--calibration", "--out", str(runs / "cal.csv")]) == 0
    assert table(runs / "cal.csv") == table(runs / "calibrated" / "evaluate_results.csv")
    assert table(runs / "cal.csv") != table(runs / "plain" / "evaluate_results.csv")  # calibration changed something
    assert dispatch(["rescore", str(runs / "calibrated"), "--no-calibration", "--out", str(runs / "uncal.csv")]) == 0
    assert table(runs / "uncal.csv") == table(runs / "plain" / "evaluate_results.csv")
    assert dispatch(["rescore", str(runs / "plain"), "--normalization", "mean"]) == 0  # GINC labels are one token:
    assert table(runs / "plain" / "evaluate_rescored_uncalibrated_mean.csv") == table(runs / "plain" / "evaluate_results.csv")


def test_predictions_hold_the_prompt_and_every_labels_sums(runs):
    record = json.loads((runs / "plain" / "predictions.jsonl").read_text().splitlines()[-1])
    assert record["k"] == 4 and record["prompt"].count(" / ") == 4  # four demonstrations, then the query
    assert set(record["logprob_sum"]) == set(record["scores"]) == set(record["label_tokens"])
    assert set(record["content_free_sum"]) == {"N/A"} and set(record["content_free_sum"]["N/A"]) == set(record["scores"])


@pytest.mark.parametrize(("args", "code", "line"), [
    (["rescore", "nowhere"], 1, "iclx: rescore: no run folder nowhere"),
    (["rescore", "."], 1, "iclx: rescore: . has no predictions.jsonl (a run with the evaluate stage writes it)"),
    (["rescore", ".", "--normalization", "max"], 2, None),
])
def test_bad_input_is_one_line(in_tmp, capsys, args, code, line):
    assert dispatch(args) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and (line is None or err == line), err
