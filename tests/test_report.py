"""`iclx report`: sweep summaries rebuilt from job folders, merged across sweeps; the command dispatcher."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iclx import registry
from iclx.cli import run_cli
from iclx.commands.report import folder_labels

from conftest import run_iclx

SWEEP = ["-m", "plugins=[iclx_test_plugin]", "stages=[echo,fail_on_seed]", "+bad_seed=1", "report.metric=echo/value"]


def sweep(folder: Path, seeds: str) -> Path:
    """A real sweep of the echo stage (echo/value = 2 * seed + 1; seed 1 fails) into ``folder``."""
    run_cli([*SWEEP, f"seed={seeds}", f"hydra.sweep.dir={folder}"])
    return folder


@pytest.fixture(scope="module")
def made_sweeps(tmp_path_factory):
    """Two real sweeps, made once: a (seeds 0, 1: seed 1 fails) and b (seeds 2, 3)."""
    root = tmp_path_factory.mktemp("sweeps")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("ICLX_CACHE_DIR", str(root / "cache"))
        patch.setenv("WANDB_MODE", "disabled")
        sweep(root / "a", "0,1")
        sweep(root / "b", "2,3")
    return root


@pytest.fixture
def sweeps(made_sweeps, in_tmp, capsys):
    """Copies of sweeps a and b in this test's folder (the current one), to change at will."""
    for name in ("a", "b"):
        shutil.copytree(made_sweeps / name, in_tmp / name)
    capsys.readouterr()
    return in_tmp / "a", in_tmp / "b"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_rebuilds_the_summary_the_sweep_wrote(sweeps, capsys):
    sweep_dir, _ = sweeps
    written = (sweep_dir / "summary.csv").read_text()
    (sweep_dir / "summary.csv").unlink()  # as if the parent process died before its callback ran
    (sweep_dir / "summary.png").unlink()
    assert run_cli(["report", str(sweep_dir)]) == 0  # a failed job is a row, not a failed report
    assert (sweep_dir / "summary.csv").read_text() == written
    assert (sweep_dir / "summary.png").stat().st_size > 5000
    table = capsys.readouterr().out.splitlines()
    # the saved report.metric (echo/value) is the table's headline column
    assert table[1].split() == ["job", "status", "overrides", "echo/value"]
    assert [line.split()[:4] for line in table[3:5]] == [["0", "ok", "seed=0", "1"], ["1", "failed", "seed=1", "3"]]


def test_report_merges_two_sweeps_with_unique_job_ids(sweeps, in_tmp, capsys):
    first, second = sweeps
    first_summary = (first / "summary.csv").read_text()
    assert run_cli(["report", str(first), str(second), "--out", "merged", "--metric", "echo/value"]) == 0
    merged = rows(in_tmp / "merged" / "summary.csv")
    assert [(r["job"], r["seed"], r["status"], r["echo/value"]) for r in merged] == [
        ("a/0", "0", "ok", "1"), ("a/1", "1", "failed", "3"), ("b/0", "2", "ok", "5"), ("b/1", "3", "ok", "7")]
    assert (in_tmp / "merged" / "summary.png").stat().st_size > 5000
    assert (first / "summary.csv").read_text() == first_summary  # each sweep keeps its own summary
    out = capsys.readouterr().out
    assert "all jobs  3     4.333 +- 3.1" in out  # mean +- std of the ok jobs: 1, 5, 7
    assert "iclx: sweep summary merged/summary.csv, plot merged/summary.png" in out


def test_metric_and_by_replace_the_saved_report_keys(sweeps, capsys):
    assert run_cli(["report", str(sweeps[1]), "--metric", "echo/seed", "--by", "seed"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["job", "status", "overrides", "echo/seed"]
    assert "mean +- std" not in "\n".join(table)  # grouped by seed: one job per group, nothing to average


def test_provenance_of_each_job_reaches_columns_and_the_printed_table(sweeps, capsys):
    machines = {"a/0": {"iclx": "0.1.0", "python": "3.11.7", "hostname": "node1", "cpus": 16},
                "a/1": {"iclx": "0.1.0", "python": "3.11.7", "hostname": "node2", "cpus": 16},
                "b/0": {"iclx": "0.1.0", "python": "3.11.7", "hostname": "node2", "cpus": 16}}
    for job, record in {**machines, "b/1": None}.items():  # b/1 as a job from before provenance was recorded
        summary_file = sweeps[0].parent / job / "summary.json"
        summary = {k: v for k, v in json.loads(summary_file.read_text()).items() if k != "provenance"}
        summary_file.write_text(json.dumps({**summary, **({"provenance": record} if record else {})}))
    assert run_cli(["report", *map(str, sweeps), "--out", "merged"]) == 0
    assert [(r["job"], r["provenance/hostname"], r["provenance/cpus"]) for r in rows(sweeps[0].parent / "merged" / "summary.csv")] == [
        ("a/0", "node1", "16"), ("a/1", "node2", "16"), ("b/0", "node2", "16"), ("b/1", "", "")]
    out = capsys.readouterr().out.splitlines()
    assert out[-5:-1] == ["provenance of jobs a/0: iclx 0.1.0, python 3.11.7, host node1",
                          "provenance of jobs a/1, b/0: iclx 0.1.0, python 3.11.7, host node2",
                          "provenance of jobs b/1: not recorded", ""]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing"], "iclx: sweep folder 'missing' does not exist"),
        (["empty"], "iclx: 'empty' has no job folders (0/, 1/, ...): it is not a sweep folder"),
        (["a", "--metric", "echo/valeu"],
         "iclx: --metric 'echo/valeu': no job produced it (did you mean 'echo/value'?). "
         "The jobs' metrics: echo/seconds, echo/seed, echo/value, fail_on_seed/passed, fail_on_seed/seconds"),
        (["a", "--curve", "echo/value_k"], "iclx: --curve 'echo/value_k': no job produced a metric 'echo/value_k<number>'. "
         "The jobs' metrics: echo/seconds, echo/seed, echo/value, fail_on_seed/passed, fail_on_seed/seconds"),
        (["a", "--by", "sed"], "iclx: --by 'sed': no job overrides it (did you mean 'seed'?). "
         "The jobs' overridden keys: bad_seed, plugins, report.metric, seed, stages"),
        (["a", "b/../a"], "iclx: report: a sweep folder is given twice"),
        (["a", "empty"], "iclx: 'empty' has no job folders (0/, 1/, ...): it is not a sweep folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(sweeps, capsys, args, message):
    (sweeps[0].parent / "empty").mkdir()
    assert run_cli(["report", *args]) == (2 if "report:" in message else 1)
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_the_console_command_reports_and_refuses_in_one_line(sweeps, in_tmp):
    """Through `python -m iclx` in a subprocess, as a user runs it."""
    (in_tmp / "b" / "summary.csv").unlink()
    done = run_iclx(in_tmp, "report", "b")
    assert done.returncode == 0, done.stderr[-2000:]
    assert [(r["job"], r["echo/value"]) for r in rows(in_tmp / "b" / "summary.csv")] == [("0", "5"), ("1", "7")]
    assert "iclx: sweep summary b/summary.csv, plot b/summary.png" in done.stdout

    done = run_iclx(in_tmp, "report", "b", str(in_tmp / "b" / "0"), "--out", "m")  # a job folder is no sweep
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"iclx: '{in_tmp / 'b' / '0'}' has no job folders (0/, 1/, ...): "
                                                "it is not a sweep folder"]
    done = run_iclx(in_tmp, "report", "a", "b", "--out")
    assert (done.returncode, done.stderr.strip()) == (2, "iclx: report: argument --out: expected one argument "
                                                         "(see iclx report --help)")


def test_several_folders_need_out(sweeps, in_tmp, capsys):
    first_summary = (in_tmp / "a" / "summary.csv").read_text()
    capsys.readouterr()
    assert run_cli(["report", "a", "b"]) == 2
    assert capsys.readouterr().err.strip() == (
        "iclx: report: with several sweep folders, name the folder for the merged summary: --out DIR")
    assert (in_tmp / "a" / "summary.csv").read_text() == first_summary


def test_rows_of_folders_with_one_name_are_told_apart_by_their_parents():
    assert folder_labels([Path("/x/sweeps/run"), Path("/y/sweeps/run")]) == ["x/sweeps/run", "y/sweeps/run"]
    assert folder_labels([Path("/s/2026-01-01_10-00-00"), Path("/s/2026-01-02_10-00-00")]) == [
        "2026-01-01_10-00-00", "2026-01-02_10-00-00"]


HEAVY = ("torch", "lightning", "faiss", "wandb", "transformers")


def test_help_lists_the_commands_and_each_has_its_own(tmp_path, capsys):
    # sys.modules, not `-X importtime`: the registry imports command modules with importlib.import_module,
    # which importtime does not log
    code = ("import sys; from iclx.cli import run_cli; code = run_cli(['--help']); "
            f"print(code, 'iclx.commands.report' in sys.modules, sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "iclx report     Rebuild summary.csv and summary.png of sweeps from their job folders" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "0 True []"
    assert run_cli(["report", "--help"]) == 0
    assert "usage: iclx report [-h] [--metric NAME]" in capsys.readouterr().out


def test_a_mistyped_command_gets_a_suggestion_and_other_words_go_to_hydra(in_tmp, capsys):
    assert run_cli(["reprot", "sweeps/x"]) == 2
    known = ", ".join(registry.known("command"))
    assert capsys.readouterr().err.strip() == f"iclx: unknown command 'reprot'. Known: {known} (did you mean 'report'?)"
    assert run_cli(["stages"]) != 0  # not a command: Hydra's own error about a missing '='
    assert "iclx: unknown command" not in capsys.readouterr().err
