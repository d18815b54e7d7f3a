"""Every multirun gets its own sweep folder: two sweeps started in the same second get two, while a
fixed ``hydra.sweep.dir`` is reused. (All jobs of a sweep in one folder under joblib and submitit:
tests/test_sweepers.py.)"""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from iclx.cli import run_cli
from iclx.sweep_folder import names_folder_by_start_time, override_value

from conftest import compose_config, iclx_env

# A time format without fields: every sweep "starts" at the same named time, as two sweeps started
# in the same second do, without depending on when the processes get the CPU.
SAME_SECOND = "hydra.sweep.dir=sweeps/echo/${now:same}"


def test_two_sweeps_started_in_the_same_second_get_two_complete_folders(tmp_path):
    seeds = ["seed=0,1", "seed=2,3"]
    procs = [subprocess.Popen([sys.executable, "-m", "iclx", "-m", "plugins=[iclx_test_plugin]", "stages=[echo]", s, SAME_SECOND],
                              cwd=tmp_path, env=iclx_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for s in seeds]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stderr.read()[-2000:] for p in procs]
    folders = sorted(p.name for p in (tmp_path / "sweeps" / "echo").iterdir())
    assert folders == ["same", "same-2"]
    swept = set()
    for folder in folders:
        rows = list(csv.DictReader(open(tmp_path / "sweeps" / "echo" / folder / "summary.csv")))
        assert [r["status"] for r in rows] == ["ok", "ok"]
        swept.add(tuple((r["seed"], r["echo/value"]) for r in rows))
    assert swept == {(("0", "1"), ("1", "3")), (("2", "5"), ("3", "7"))}  # each folder holds one whole sweep


def test_a_fixed_sweep_folder_is_reused_not_suffixed(in_tmp):
    (in_tmp / "sweeps" / "fixed").mkdir(parents=True)  # e.g. an earlier run of the same sweep
    assert run_cli(["-m", "plugins=[iclx_test_plugin]", "stages=[echo]", "seed=0,1", "hydra.sweep.dir=sweeps/fixed"]) == 0
    assert [p.name for p in (in_tmp / "sweeps").iterdir()] == ["fixed"]
    assert len(list(csv.DictReader(open(in_tmp / "sweeps" / "fixed" / "summary.csv")))) == 2


def test_the_default_sweep_folder_is_named_by_its_start_time_and_so_claimed():
    assert names_folder_by_start_time(compose_config([]))
    assert not names_folder_by_start_time(compose_config(["hydra.sweep.dir=sweeps/fixed"]))


@pytest.mark.parametrize("path", ["sweeps/q/2026-01-01_00-00-00-2", "/data/my sweeps/a,b=c", "it's", "x\\'y", "ends\\"])
def test_a_claimed_folder_reads_back_from_its_override_unchanged(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert OverridesParser.create().parse_override(f"hydra.sweep.dir={override_value(path)}").value() == path
