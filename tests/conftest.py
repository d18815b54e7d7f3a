"""Shared test helpers: run the real `iclx` command, compose configs in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))  # tests/plugins/iclx_test_plugin.py: `plugins=[iclx_test_plugin]`

# Test workloads are tiny: one BLAS/OpenMP thread is faster than two (no fork/join per op) and
# does not collapse when the machine is busy.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


def iclx_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ICLX_CACHE_DIR=str(tmp_path / "cache"),
        WANDB_MODE=extra.pop("WANDB_MODE", "disabled"),
        # no empty entry: Python reads one as the current folder, which iclx keeps off the import path
        PYTHONPATH=os.pathsep.join(p for p in [str(PLUGINS), env.get("PYTHONPATH", "")] if p),
        HF_HUB_OFFLINE="1",
    )
    env.pop("ICLX_DEBUG", None)
    env.pop("WANDB_SERVICE", None)  # an in-process W&B run of an earlier test leaves its service's address
    env.update(extra)
    return env


def run_iclx(tmp_path: Path, *args: str, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    """`python -m iclx ARGS` in ``tmp_path`` (outputs land there), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "iclx", *args],
        cwd=tmp_path,
        env=iclx_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run_dir(root: Path) -> Path:
    """The one run folder under ``root`` (outputs/<name>/<date>_<time>)."""
    dirs = [p.parent for p in root.rglob("summary.json")]
    assert len(dirs) == 1, f"expected one run under {root}, found {dirs}"
    return dirs[0]


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# CI=true (.ci/run exports it): CI installs every extra (`.[dev]`), so a test skipped because an
# optional module is missing means the install broke. Skips for data a checkout may lack
# (../shared/data) stay skips: a clean clone in CI need not have it beside it.
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a test that ``pytest.importorskip`` skipped fails instead, with the reason."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and call.excinfo is not None and _raised_by_importorskip(call.excinfo.tb):
        report.outcome = "failed"
        report.longrepr = f"CI=true: an optional extra is missing, so this test did not run: {call.excinfo.value}"


def _raised_by_importorskip(tb) -> bool:
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "importorskip":
            return True
        tb = tb.tb_next
    return False


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run iclx in-process (iclx.cli.run_cli) from an empty folder, with its own cache and W&B off."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ICLX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return tmp_path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


def compose_config(overrides: list[str]):
    """The composed config of `iclx OVERRIDES`, with the hydra section (as a job sees it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from iclx.cli import conf_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return cfg
