"""Slow pre-training checks (``pytest -m slow``): real processes killed and resumed, 2-process DDP
on the CPU (gloo), and the ``pretrain_tiny`` experiment as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from iclx.models.bundle import load_model

from conftest import iclx_env, run_iclx

pytestmark = pytest.mark.slow

TINY = [
    "~experiment", "stages=[tokenize,pack,pretrain]", "trainer.enable_progress_bar=false",
    "data.n_documents=40", "data.document_length=200", "data.validation.fraction=0.1",
    "model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.max_seq_len=64",
    "optimizer.lr=3e-3", "optimizer.schedule.warmup_steps=5", "pretrain.batch_size=4", "pretrain.val_every=10", "pretrain.checkpoint_every=10", "pretrain.val_windows=8",
    "pretrain.samples.n=1", "pretrain.samples.max_new_tokens=4",
]


def finished(cache: Path, kind: str = "pretrain") -> Path:
    (folder,) = [p for p in (cache / kind).iterdir() if p.is_dir() and not p.name.endswith(".partial")]
    return folder


def test_sigkill_at_any_moment_then_the_same_command_finishes_identically(tmp_path):
    args = [*TINY, "trainer.max_steps=200", "hydra.run.dir=out"]
    (tmp_path / "straight").mkdir()
    straight = run_iclx(tmp_path / "straight", *args, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    work = tmp_path / "killed"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "iclx", *args], cwd=work, env=iclx_env(work),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    last = None
    while time.time() < deadline and proc.poll() is None:
        found = list((work / "cache" / "pretrain").glob("*.partial/checkpoints/last.ckpt")) if (work / "cache" / "pretrain").is_dir() else []
        if found:
            last = found[0]
            break
        time.sleep(0.2)
    time.sleep(0.5)  # somewhere after the first checkpoint: mid-step, mid-validation or mid-save
    assert last is not None and proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = torch.load(last, weights_only=True)["global_step"]
    assert 10 <= step_at_kill < 200

    resumed = run_iclx(work, *args, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "pretrain: resuming from" in (work / "out" / "iclx.log").read_text()
    a, _ = load_model(finished(tmp_path / "straight" / "cache"))
    b, _ = load_model(finished(work / "cache"))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6), name


def test_ddp_with_two_cpu_processes(tmp_path):
    proc = run_iclx(tmp_path, *TINY, "trainer=ddp", "trainer.accelerator=cpu", "trainer.max_steps=30",
                    "hydra.run.dir=out", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = finished(tmp_path / "cache")
    results = json.loads((folder / "results.json").read_text())
    assert results["steps"] == 30 and results["tokens"] == 30 * 4 * 64 * 2  # two processes, 4 windows each
    assert json.loads((folder / "artifact.json").read_text())["config"]["settings"]["world_size"] == 2
    assert results["val_loss"] < results["unigram_val_loss"]


def test_pretrain_tiny_experiment_learns_and_is_reused(tmp_path):
    start = time.perf_counter()
    first = run_iclx(tmp_path, "experiment=pretrain_tiny", "trainer.enable_progress_bar=false", "hydra.run.dir=first", timeout=1200)
    first_seconds = time.perf_counter() - start
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((tmp_path / "first" / "summary.json").read_text())["stages"]["pretrain"]
    assert summary["val_loss"] < summary["unigram_val_loss"] - 1.0
    log = (tmp_path / "first" / "iclx.log").read_text()
    assert "samples of the pre-trained model" in log and "The history of the" in log

    start = time.perf_counter()
    second = run_iclx(tmp_path, "experiment=pretrain_tiny", "hydra.run.dir=second", timeout=600)
    assert second.returncode == 0
    assert time.perf_counter() - start < first_seconds / 3
    log = (tmp_path / "second" / "iclx.log").read_text()
    assert all(f"reusing {kind} artifact" in log for kind in ("tokenizer", "pack", "pretrain"))


def test_three_kills_at_random_moments_resume_to_the_uninterrupted_weights(tmp_path):
    """benchmarks/kill_resume.py, shortened: the same command killed 3 times with SIGKILL and run
    again each time ends with the uninterrupted run's weights and validation loss, bit for bit."""
    figures_file = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "kill_resume.py"),
                           "--config", "tiny", "--kills", "3", "--max-steps", "100", "--checkpoint-every", "10",
                           "--seed", "1", "--workdir", str(tmp_path / "work"), "--json", str(figures_file)],
                          env=iclx_env(tmp_path), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(figures_file.read_text())
    assert figures["kills"] == 3
    killed = [a for a in figures["attempts"] if a["killed_after_s"] is not None]
    assert all(a["checkpoint_error"] == "" for a in killed)
    assert [a["resumed_from"] for a in figures["attempts"][1:]] == [a["checkpoint_step"] or 0 for a in killed]
    assert figures["weights_identical"] and figures["max_abs_weight_diff"] == 0.0
    assert figures["val_loss_equal"] and figures["steps"] == [100, 100]
