"""The multirun summary: rows from job folders (even broken ones), curve and scalar plots."""

from __future__ import annotations

import csv
import json

from iclx.sweep_summary import summarize_sweep
from iclx.tables import format_table


def make_job(sweep, num, overrides, status="ok", stages=None, error=None):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status is not None:
        summary = {"status": status, "stages": stages or {}}
        if error:
            summary["error"] = error
        (job / "summary.json").write_text(json.dumps(summary))


def test_curve_sweep_groups_by_selector_and_averages_seeds(tmp_path):
    accuracy = {("random", 0): [0.5, 0.6], ("random", 1): [0.5, 0.62], ("knn", 0): [0.5, 0.8], ("knn", 1): [0.5, 0.84]}
    for num, ((selector, seed), (k0, k4)) in enumerate(sorted(accuracy.items())):
        make_job(tmp_path, num, [f"selector={selector}", f"seed={seed}"],
                 stages={"evaluate": {"accuracy_k0": k0, "accuracy_k4": k4, "seconds": 1.0}})
    make_job(tmp_path, 4, ["selector=mmr", "seed=0"], status=None)  # died without a summary
    csv_path, plot_path, table = summarize_sweep(tmp_path, {"curve": "evaluate/accuracy_k"}, "selectors")
    rows = list(csv.DictReader(open(csv_path)))
    assert [(r["selector"], r["seed"], r["status"]) for r in rows] == [
        ("knn", "0", "ok"), ("knn", "1", "ok"), ("random", "0", "ok"), ("random", "1", "ok"), ("mmr", "0", "failed")]
    assert rows[4]["error"].startswith("no summary.json")
    assert [r["evaluate/accuracy_k4"] for r in rows[:4]] == ["0.8", "0.84", "0.6", "0.62"]
    assert plot_path is not None and plot_path.stat().st_size > 5000
    assert table.splitlines()[0].split() == ["job", "status", "overrides", "evaluate/accuracy_k0", "evaluate/accuracy_k4"]


def test_scalar_sweep_uses_numeric_override_as_x(tmp_path):
    for num, (n, seed) in enumerate([(5, 0), (5, 1), (10, 0), (10, 1)]):
        make_job(tmp_path, num, [f"probe.n={n}", f"seed={seed}"], stages={"probe": {"loss_ratio": 1.0 + n / 100 + seed / 1000}})
    make_job(tmp_path, 4, ["probe.n=20", "seed=0"], status="running")  # killed mid-run
    csv_path, plot_path, _ = summarize_sweep(tmp_path, {"metric": "probe/loss_ratio"}, "icl_gd")
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["failed"]
    assert rows[4]["error"] == "the job stopped before finishing"
    assert plot_path is not None and plot_path.name == "summary.png"


def test_no_plot_when_nothing_succeeded(tmp_path):
    make_job(tmp_path, 0, ["seed=0"], status="failed", error="boom")
    csv_path, plot_path, _ = summarize_sweep(tmp_path, {"metric": "probe/loss_ratio"}, "x")
    assert plot_path is None and list(csv.DictReader(open(csv_path)))[0]["error"] == "boom"


def test_format_table_aligns_columns():
    text = format_table(["a", "bb"], [[1, 0.123456], ["long", 2.0]])
    assert text.splitlines() == ["a     bb    ", "----  ------", "1     0.1235", "long  2     "]


def test_table_lists_shared_overrides_once(tmp_path):
    for num, seed in enumerate([0, 1]):
        make_job(tmp_path, num, ["experiment=clustered_icl", f"seed={seed}", "pretrain.max_steps=4"],
                 stages={"probe": {"loss_ratio": 1.0 + seed}})
    _, _, table = summarize_sweep(tmp_path, {"metric": "probe/loss_ratio"}, "x")
    lines = table.splitlines()
    assert [line.split()[:3] for line in lines[2:4]] == [["0", "ok", "seed=0"], ["1", "ok", "seed=1"]]
    assert "every job: experiment=clustered_icl pretrain.max_steps=4" in lines


def test_a_list_of_curves_draws_each_group_once_per_task_variant(tmp_path):
    for num, (order, seed) in enumerate([("random", 0), ("random", 1), ("iclm", 0), ("iclm", 1)]):
        shift = 0.1 if order == "iclm" else 0.0
        make_job(tmp_path, num, [f"data/order={order}", f"seed={seed}"], stages={"evaluate": {
            "standard/accuracy_k0": 0.5, "standard/accuracy_k4": 0.7,
            "eos_separated/accuracy_k0": 0.5, "eos_separated/accuracy_k4": 0.5 + shift}})
    report = {"curve": ["evaluate/standard/accuracy_k", "evaluate/eos_separated/accuracy_k"], "by": ["data/order"]}
    _, plot_path, table = summarize_sweep(tmp_path, report, "orderings")
    assert plot_path is not None and plot_path.stat().st_size > 5000
    header = table.splitlines()[0].split()
    assert header[3:] == ["evaluate/eos_separated/accuracy_k0", "evaluate/eos_separated/accuracy_k4",
                          "evaluate/standard/accuracy_k0", "evaluate/standard/accuracy_k4"]
    iclm = next(line for line in table.splitlines() if line.startswith("data/order=iclm"))
    assert iclm.split()[1:] == ["2", "0.5", "+-", "0", "0.6", "+-", "0", "0.5", "+-", "0", "0.7", "+-", "0"]


def test_curve_names_keep_the_parts_that_differ():
    from iclx.sweep_summary import curve_names

    assert curve_names(["evaluate/standard/accuracy_k", "evaluate/eos_separated/accuracy_k"]) == {
        "evaluate/standard/accuracy_k": "standard", "evaluate/eos_separated/accuracy_k": "eos_separated"}
