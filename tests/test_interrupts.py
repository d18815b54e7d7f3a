"""Runs that are interrupted, collide or fail are recorded as such: SIGTERM/Ctrl-C mark the run
interrupted with one line, two runs in the same second get two folders, a failed build leaves no
.partial, and a run waiting on another's artifact lock says so."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from iclx.artifacts import ArtifactStore
from iclx.resolvers import fresh_folder

from conftest import iclx_env


def test_sigterm_marks_the_run_interrupted_in_one_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "iclx", "plugins=[iclx_test_plugin]", "stages=[sleep]", "hydra.run.dir=run"],
                            cwd=tmp_path, env=iclx_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if (tmp_path / "run" / "sleeping").exists():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert [line for line in err.splitlines() if line.startswith("iclx:")] == [
        f"iclx: interrupted (SIGTERM); {tmp_path / 'run' / 'summary.json'} says so"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "interrupted"


def test_two_runs_in_the_same_second_get_two_folders(tmp_path):
    first = fresh_folder(str(tmp_path / "outputs" / "x" / "2026-01-01_00-00-00"))
    second = fresh_folder(str(tmp_path / "outputs" / "x" / "2026-01-01_00-00-00"))
    assert first.endswith("00-00-00") and second.endswith("00-00-00-2")
    procs = [subprocess.Popen([sys.executable, "-m", "iclx", "plugins=[iclx_test_plugin]", "stages=[echo]"], cwd=tmp_path,
                              env=iclx_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    summaries = sorted((tmp_path / "outputs" / "quickstart").glob("*/summary.json"))
    assert len(summaries) == 2 and all(json.loads(s.read_text())["status"] == "ok" for s in summaries)


def test_a_failed_build_leaves_no_partial_folder(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(folder):
        (folder / "half.bin").write_bytes(b"xx")
        raise RuntimeError("disk full")

    for resumable in (False, True):
        with pytest.raises(RuntimeError):
            store.get_or_build("pack", "k", lambda f: (_ for _ in ()).throw(RuntimeError("early")), resumable=resumable)
        assert list(tmp_path.joinpath("pack").iterdir()) == [tmp_path / "pack" / "k.lock"]
    with pytest.raises(RuntimeError):
        store.get_or_build("pack", "k", broken)
    assert not (tmp_path / "pack" / "k.partial").exists()
    with pytest.raises(RuntimeError):  # a resumable builder's work is kept for the next try
        store.get_or_build("pretrain", "k", broken, resumable=True)
    assert (tmp_path / "pretrain" / "k.partial" / "half.bin").exists()


def test_waiting_on_another_process_lock_is_logged(tmp_path, caplog, monkeypatch):
    from filelock import FileLock

    final = tmp_path / "tokenizer" / "k"
    final.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; from pathlib import Path\n"
        f"lock = FileLock({str(final) + '.lock'!r}); lock.acquire()\n"
        f"Path({str(final) + '.lock.pid'!r}).write_text('4242'); print('held', flush=True); time.sleep(3)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    real_acquire = FileLock.acquire
    monkeypatch.setattr(FileLock, "acquire", lambda self, timeout=None, **kw: real_acquire(self, timeout=0.5, **kw))
    with caplog.at_level(logging.INFO, logger="iclx"):
        ArtifactStore(tmp_path).get_or_build("tokenizer", "k", lambda f: (f / "t").write_text("x"))
    holder.wait(timeout=30)
    assert "waiting for the tokenizer artifact k: process 4242 is building it" in caplog.text
    assert not os.path.exists(str(final) + ".lock.pid")
