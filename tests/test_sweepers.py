"""Sweeps under Hydra's sweepers and launchers: Optuna's persistent study, submitit's local
executor and joblib give the basic launcher's rows; an interrupted sweep is completed by rerunning
it; user config folders hold presets the early group check accepts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from iclx.sweep_summary import job_folders

from conftest import run_iclx

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

ECHO = ["plugins=[iclx_test_plugin]", "stages=[echo,fail_on_seed]", "+bad_seed=2"]


def sweep_rows(root: Path) -> list[dict[str, str]]:
    (sweep_dir,) = (root / "sweeps" / "quickstart").iterdir()
    return list(csv.DictReader(open(sweep_dir / "summary.csv")))


def comparable(rows: list[dict[str, str]]) -> list[tuple]:
    return [(r["job"], r["status"], r["seed"], r["echo/value"], r["error"],
             " ".join(o for o in r["overrides"].split() if not o.startswith("launcher="))) for r in rows]


@pytest.mark.parametrize("launcher", ["joblib", "local"])
def test_launchers_give_the_basic_launchers_rows_and_exit_code_in_one_fresh_folder(tmp_path, launcher):
    """joblib's workers and submitit's job processes compose each job's config again: all of them
    must still use the folder the sweep claimed, here ``same-2`` since another sweep took ``same``."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    (tmp_path / "basic").mkdir()
    taken = tmp_path / launcher / "sweeps" / "quickstart" / "same"
    taken.mkdir(parents=True)
    basic = run_iclx(tmp_path / "basic", "-m", *ECHO, "seed=0,1,2,3", "threads=1")
    other = run_iclx(tmp_path / launcher, "-m", *ECHO, "seed=0,1,2,3", "threads=1", f"launcher={launcher}",
                     "hydra.sweep.dir=sweeps/quickstart/${now:same}")  # a start time every sweep shares
    assert basic.returncode == other.returncode == 1, other.stderr[-2000:]  # the job of seed 2 failed
    assert list(taken.iterdir()) == []
    (sweep_dir,) = [p for p in taken.parent.iterdir() if p != taken]
    assert sweep_dir.name == "same-2" and [p.name for p in job_folders(sweep_dir)] == ["0", "1", "2", "3"]
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert comparable(rows) == comparable(sweep_rows(tmp_path / "basic"))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok"] and rows[2]["error"] == "seed 2 is the bad seed"


def test_joblib_jobs_share_the_cores(tmp_path):
    proc = run_iclx(tmp_path, "-m", "plugins=[iclx_test_plugin]", "stages=[echo]", "seed=0,1", "launcher=joblib")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sweep_dir,) = (tmp_path / "sweeps" / "quickstart").iterdir()
    import os

    expected = max(1, (os.cpu_count() or 1) // 2)
    for job in ("0", "1"):
        assert f"threads: {expected} per job (JoblibLauncher" in (sweep_dir / job / "iclx.log").read_text()


def test_rerunning_an_interrupted_sweep_runs_only_the_jobs_not_done(tmp_path):
    args = ["-m", "plugins=[iclx_test_plugin]", "stages=[echo,exit_on_seed]", "seed=0,1,2,3"]
    killed = run_iclx(tmp_path, *args, ICLX_TEST_EXIT_SEED="2")  # the parent dies in job 2, as after kill -9
    assert killed.returncode == 9
    rerun = run_iclx(tmp_path, *args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    first, second = sorted((tmp_path / "sweeps" / "quickstart").iterdir())
    rows = list(csv.DictReader(open(second / "summary.csv")))
    assert [(r["seed"], r["status"], r["echo/value"]) for r in rows] == [("0", "ok", "1"), ("1", "ok", "3"), ("2", "ok", "5"), ("3", "ok", "7")]
    skipped = [json.loads((second / j / "summary.json").read_text()).get("skipped", "") for j in "0123"]
    assert [bool(s) for s in skipped] == [True, True, False, False]
    assert skipped[0] == f"done in sweeps/quickstart/{first.name}/0"
    # sweep.skip_done=false runs every job again
    again = run_iclx(tmp_path, *args, "sweep.skip_done=false")
    assert again.returncode == 0
    third = sorted((tmp_path / "sweeps" / "quickstart").iterdir())[-1]
    assert not any("skipped" in json.loads((third / j / "summary.json").read_text()) for j in "0123")


OPTUNA_PRESET = """# @package _global_
defaults:
  - override /hydra/sweeper: optuna
hydra:
  sweeper:
    direction: maximize
    study_name: echo
    storage: sqlite:///${hydra.sweep.dir}/../optuna.db
    n_trials: 3
    sampler:
      seed: null
    params:
      seed: range(0, 40)
sweep_name: optuna_echo
report:
  metric: echo/value
"""


def test_optuna_study_persists_and_a_user_preset_lives_outside_the_package(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    (tmp_path / "my_conf" / "sweep").mkdir(parents=True)
    (tmp_path / "my_conf" / "sweep" / "optuna_echo.yaml").write_text(OPTUNA_PRESET)
    args = ["--config-dir", "my_conf", "-m", "sweep=optuna_echo", "plugins=[iclx_test_plugin]", "stages=[echo]"]
    for _ in range(2):
        proc = run_iclx(tmp_path, *args)
        assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = sorted(p for p in (tmp_path / "sweeps" / "optuna_echo").iterdir() if p.is_dir())
    assert (tmp_path / "sweeps" / "optuna_echo" / "optuna.db").is_file()
    trials = list(csv.DictReader(open(second / "study.csv")))
    assert [t["trial"] for t in trials] == ["0", "1", "2", "3", "4", "5"]  # the second invocation went on
    assert all(t["state"] == "COMPLETE" and float(t["objective"]) == 2 * int(t["seed"]) + 1 for t in trials)
    rows = list(csv.DictReader(open(second / "summary.csv")))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert (second / "summary.png").stat().st_size > 5000
    assert "optuna study 'echo': 6 trials so far" in proc.stdout


def test_a_user_preset_is_known_to_the_group_check_and_a_missing_folder_is_one_line(tmp_path):
    (tmp_path / "my_conf" / "experiment").mkdir(parents=True)
    (tmp_path / "my_conf" / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 7\n")
    proc = run_iclx(tmp_path, "--config-dir", "my_conf", "experiment=mine", "plugins=[iclx_test_plugin]", "stages=[echo]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "mine").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["stages"]["echo"]["value"] == 15
    searchpath = run_iclx(tmp_path, f"hydra.searchpath=[file://{tmp_path}/my_conf]", "experiment=mine", "--cfg", "job")
    assert searchpath.returncode == 0 and "seed: 7" in searchpath.stdout
    typo = run_iclx(tmp_path, "--config-dir", "my_conf", "experiment=mien")
    assert typo.returncode == 2 and "(did you mean 'mine'?)" in typo.stderr
    missing = run_iclx(tmp_path, "--config-dir", "no_such_conf", "experiment=mine")
    assert missing.returncode == 2 and missing.stderr.strip() == "iclx: --config-dir: config folder no_such_conf does not exist"


def test_a_search_space_over_a_missing_key_stops_before_any_job(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    (tmp_path / "my_conf" / "sweep").mkdir(parents=True)
    preset = OPTUNA_PRESET.replace("seed: range(0, 40)", "optimizer.lrr: interval(0.001, 0.01)")
    (tmp_path / "my_conf" / "sweep" / "optuna_echo.yaml").write_text(preset)
    proc = run_iclx(tmp_path, "--config-dir", "my_conf", "-m", "sweep=optuna_echo", "plugins=[iclx_test_plugin]", "stages=[echo]")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "iclx: hydra.sweeper.params: 'optimizer.lrr' is not a key of the config (did you mean 'lr'?)")
    assert not list((tmp_path / "sweeps").rglob("summary.json"))  # no job ran


def test_a_report_metric_no_job_produced_fails_the_sweep(in_tmp, capsys):
    from iclx.cli import run_cli

    assert run_cli(["-m", "plugins=[iclx_test_plugin]", "stages=[echo]", "seed=0,1", "report.metric=echo/valeu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["iclx: the sweep summary failed: report.metric 'echo/valeu': no job produced it (did you mean "
                   "'echo/value'?). The jobs' metrics: echo/seconds, echo/seed, echo/value"]
