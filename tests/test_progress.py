"""Progress works in logs: bars on a terminal, one line per interval when output is redirected."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from iclx import progress
from iclx.cli import conf_dir
from iclx.progress import ProgressLines

from conftest import iclx_env


@pytest.fixture
def clock(monkeypatch):
    """iclx.progress's clock, moved by hand: ``clock.now += 1``."""
    fake = SimpleNamespace(now=0.0)
    monkeypatch.setattr(progress.time, "monotonic", lambda: fake.now)
    return fake


@pytest.fixture
def in_a_log(monkeypatch):
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    monkeypatch.setattr(progress, "settings", progress.ProgressSettings(interval_s=3.0))


def iclx_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "iclx"]


def test_a_loop_writes_a_line_per_interval_with_rate_and_eta(clock, caplog, in_a_log):
    caplog.set_level(logging.INFO, logger="iclx")
    seen = []
    for item in progress.progress(range(10), desc="tokenize train", unit="doc"):
        clock.now += 1  # one second per item
        seen.append(item)
    assert seen == list(range(10))
    # the rate counts from the first item's end: 2 items in the 2 s after it, so 1 doc/s
    assert iclx_lines(caplog) == [
        "tokenize train: 3/10 doc (30%), 1 doc/s, ETA 7s",
        "tokenize train: 6/10 doc (60%), 1 doc/s, ETA 4s",
        "tokenize train: 9/10 doc (90%), 1 doc/s, ETA 1s",
        "tokenize train: 10/10 doc done in 10s",
    ]


def test_a_line_says_what_the_loop_is_on(clock, caplog, in_a_log):
    caplog.set_level(logging.INFO, logger="iclx")
    with progress.progress(total=4, desc="evaluate", unit="k") as bar:
        for k in (0, 1, 2, 4):
            bar.set_postfix_str(f"knn k={k}")
            clock.now += 2
            bar.update()
    assert iclx_lines(caplog)[0] == "evaluate: 2/4 k (50%), knn k=1, 0.5 k/s, ETA 4s"


def test_a_loop_shorter_than_the_interval_writes_nothing(clock, caplog, in_a_log):
    caplog.set_level(logging.INFO, logger="iclx")
    with progress.progress(total=100, desc="embedding", unit="text") as bar:
        for _ in range(10):
            clock.now += 0.1
            bar.update(10)
    assert iclx_lines(caplog) == []


def test_unknown_totals_and_caller_figures(clock, caplog):
    caplog.set_level(logging.INFO, logger="iclx")
    lines = ProgressLines("pretrain", total=None, unit="step", interval_s=5, unit_first=True, show_rate=False)
    for step in range(1, 13):
        clock.now += 1
        lines.advance_to(step, [f"loss {3 - step / 10:.2f}", "12k tokens/s"])
    assert iclx_lines(caplog) == ["pretrain: step 5, loss 2.50, 12k tokens/s", "pretrain: step 10, loss 2.00, 12k tokens/s"]


def test_bars_on_a_terminal_and_nothing_when_disabled(monkeypatch, caplog):
    from tqdm.auto import tqdm

    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert isinstance(progress.progress(range(3), desc="x"), tqdm)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    assert isinstance(progress.progress(range(3), desc="x"), ProgressLines)
    monkeypatch.setattr(progress, "settings", progress.ProgressSettings(interval_s=1e-9, enabled=False))
    caplog.set_level(logging.INFO, logger="iclx")
    assert list(progress.progress(range(3), desc="x")) == [0, 1, 2] and iclx_lines(caplog) == []


@pytest.mark.parametrize("terminal", [True, False])
def test_the_trainer_draws_lightnings_bar_only_on_a_terminal(tmp_path, monkeypatch, terminal):
    from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

    from iclx.training import build_trainer
    from iclx.training.progress import LogProgress

    monkeypatch.setattr(progress, "on_terminal", lambda: terminal)
    trainer = build_trainer(SimpleNamespace(loggers=[], out_dir=tmp_path), trainer_cfg=OmegaConf.load(conf_dir() / "trainer" / "cpu.yaml"),
                            default_max_steps=5)
    assert isinstance(trainer.progress_bar_callback, ProgressBar)
    assert isinstance(trainer.progress_bar_callback, LogProgress) is not terminal


def test_a_redirected_pretraining_logs_progress_lines_and_no_carriage_returns(tmp_path):
    """`iclx ... > run.log 2>&1`: what a batch job's log gets."""
    args = ["~experiment", "stages=[tokenize,pack,pretrain]", "data.n_documents=40", "data.document_length=200",
            "model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.max_seq_len=64", "pretrain.batch_size=4",
            "trainer.max_steps=40", "pretrain.val_every=20", "pretrain.val_windows=8", "pretrain.samples.n=1",
            "trainer.log_every_n_steps=2", "trainer.progress_interval=0.05", "hydra.run.dir=run"]
    log_file = tmp_path / "run.log"
    with log_file.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "iclx", *args], cwd=tmp_path, env=iclx_env(tmp_path),
                              stdout=out, stderr=subprocess.STDOUT, timeout=600)
    text = log_file.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "\r" not in text
    steps = re.findall(r"pretrain: step (\d+)/40 \(\d+%\), loss [\d.]+, .*[\d.]+k? tokens/s, ETA \d+", text)
    assert steps and all(0 < int(s) <= 40 for s in steps), text[-3000:]
    assert re.search(r"pretrain: step 40/40 done in \d+s, loss [\d.]+", text)
    assert "pretrain: step " in (tmp_path / "run" / "iclx.log").read_text()  # the run folder's log has them too
    # this run's output was 13 KB with tqdm's bar (no rich), 6 KB with a line every 0.05 s here
    assert len(text) < 12_000
