"""The pre-training stages end to end: GINC -> word tokenizer -> packed windows -> tiny GPT.

In-process runs (``run_cli``) with a model small enough to train 30 steps in seconds; the
artifacts (tokenizer, shards, checkpoint) are reused by a second run, a crashed run resumes to the
same weights and windows, and bad inputs stop with one line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from iclx.cli import run_cli
from iclx.models.bundle import load_model
from iclx.training.lm import LMTask, read_history

from conftest import read_summary

GINC = ["data.n_documents=40", "data.document_length=200", "data.validation.fraction=0.1"]
TINY = [
    "~experiment", "stages=[tokenize,pack,pretrain]", "trainer.enable_progress_bar=false", "model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.max_seq_len=64",
    "optimizer.lr=3e-3", "optimizer.schedule.warmup_steps=5",
    "pretrain.batch_size=4", "trainer.max_steps=30", "pretrain.val_every=10", "pretrain.checkpoint_every=10",
    "pretrain.val_windows=8", "pretrain.samples.n=2", "pretrain.samples.max_new_tokens=8",
]


def run(tmp: Path, name: str, *overrides: str) -> tuple[int, Path]:
    """``iclx`` with the tiny settings, on the small GINC corpus unless ``overrides`` choose other data."""
    out = tmp / name
    data = [] if any(o.startswith("data=") for o in overrides) else GINC
    return run_cli([*TINY, *data, *overrides, f"hydra.run.dir={out}"]), out


def artifact(tmp: Path, kind: str) -> Path:
    (folder,) = [p for p in (tmp / "cache" / kind).iterdir() if p.is_dir() and not p.name.endswith(".partial")]
    return folder


@pytest.fixture
def record_batches(monkeypatch):
    """Every training batch as (step, hash of its tokens), in the order the model saw them."""
    seen: list[tuple[int, str]] = []
    original = LMTask.training_step

    def recording(self, batch, batch_idx):
        seen.append((self.global_step, hashlib.sha1(batch.numpy().tobytes()).hexdigest()[:12]))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LMTask, "training_step", recording)
    return seen


def test_pretrain_on_ginc_then_reuse_everything(in_tmp, record_batches):
    code, first = run(in_tmp, "first")
    assert code == 0, read_summary(first).get("error")
    summary = read_summary(first)["stages"]
    pre, packed = summary["pretrain"], summary["pack"]
    assert pre["steps"] == 30 and pre["tokens"] == 30 * 4 * 64 and pre["reused"] == 0
    assert pre["val_loss"] < pre["unigram_val_loss"] - 0.1  # context beats token frequencies
    assert pre["tokens_per_s"] > 0 and 0 < pre["mfu"] < 1
    assert packed["train_windows"] == (packed["train_tokens"] - 1) // 64 and packed["dtype"] == "uint16"
    assert summary["tokenize"]["vocab_size"] <= 54
    assert len(record_batches) == 30 and len(set(h for _, h in record_batches)) == 30

    folder = artifact(in_tmp, "pretrain")
    assert {"model.pt", "results.json", "samples.json", "history.csv", "tokenizer"} <= {p.name for p in folder.iterdir()}
    assert {p.name for p in (folder / "checkpoints").iterdir()} == {"last.ckpt", "best.ckpt", "last.ckpt.sha256", "best.ckpt.sha256"}
    history = read_history(folder / "history.csv")
    assert [r["step"] for r in history if r["metric"] == "val/loss"] == [10, 20, 30]
    assert [r["step"] for r in history if r["metric"] == "train/loss"] == [10, 20, 30]
    assert (first / "plots" / "pretrain_loss.png").stat().st_size > 10_000
    assert "continuation" in (first / "pretrain_samples.csv").read_text().splitlines()[0]

    code, second = run(in_tmp, "second")
    assert code == 0
    again = read_summary(second)["stages"]["pretrain"]
    assert again["reused"] == 1 and again["val_loss"] == pre["val_loss"]
    assert len(record_batches) == 30  # nothing trained the second time
    log = (second / "iclx.log").read_text()
    for kind in ("tokenizer", "pack", "pretrain"):
        assert f"reusing {kind} artifact" in log

    # later stages load the artifact: generate alone, and evaluate-style loading from a checkpoint path
    code, gen = run(in_tmp, "generate", "stages=[generate]")
    assert code == 0 and read_summary(gen)["stages"]["generate"]["samples"] == 2
    model, tokenizer = load_model(folder / "checkpoints" / "best.ckpt")
    assert model.num_parameters() == pre["parameters"] and tokenizer.vocab_size == summary["tokenize"]["vocab_size"]


def test_force_rebuilds_and_a_new_seed_is_a_new_model(in_tmp):
    assert run(in_tmp, "a", "trainer.max_steps=4", "pretrain.val_every=2")[0] == 0
    code, forced = run(in_tmp, "b", "trainer.max_steps=4", "pretrain.val_every=2", "force=true")
    assert code == 0 and read_summary(forced)["stages"]["pretrain"]["reused"] == 0
    code, seeded = run(in_tmp, "c", "trainer.max_steps=4", "pretrain.val_every=2", "seed=5", "pretrain.seed=0")
    assert read_summary(seeded)["stages"]["pretrain"]["reused"] == 1  # the top-level seed alone does not retrain
    run(in_tmp, "d", "trainer.max_steps=4", "pretrain.val_every=2", "pretrain.seed=1")
    assert len([p for p in (in_tmp / "cache" / "pretrain").iterdir() if p.is_dir()]) == 2


def test_resume_after_a_crash_gives_the_same_windows_and_weights(in_tmp, record_batches, monkeypatch):
    monkeypatch.setenv("ICLX_CACHE_DIR", str(in_tmp / "straight" / "cache"))
    assert run(in_tmp / "straight", "run")[0] == 0
    straight = list(record_batches)
    straight_model, _ = load_model(artifact(in_tmp / "straight", "pretrain"))
    straight_history = read_history(artifact(in_tmp / "straight", "pretrain") / "history.csv")

    crashed = in_tmp / "crashed"
    monkeypatch.setenv("ICLX_CACHE_DIR", str(crashed / "cache"))
    original = LMTask.training_step

    def crash_at_17(self, batch, batch_idx):
        if self.global_step == 17:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    record_batches.clear()
    monkeypatch.setattr(LMTask, "training_step", crash_at_17)
    code, first = run(crashed, "killed")
    assert code == 1 and "simulated crash" in read_summary(first)["error"]
    (partial,) = (crashed / "cache" / "pretrain").glob("*.partial")
    assert (partial / "checkpoints" / "last.ckpt").is_file()
    before_crash = list(record_batches)

    record_batches.clear()
    monkeypatch.setattr(LMTask, "training_step", original)
    code, resumed = run(crashed, "resumed")
    assert code == 0
    assert "pretrain: resuming from" in (resumed / "iclx.log").read_text()
    # steps 0-9 before the crash (checkpoint at 10), then 10-29 after the resume: the straight run's windows
    assert before_crash[:10] + record_batches == straight
    assert record_batches[0][0] == 10
    model, _ = load_model(artifact(crashed, "pretrain"))
    for (name, a), b in zip(straight_model.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    history = read_history(artifact(crashed, "pretrain") / "history.csv")
    losses = lambda rows: [(r["step"], round(r["value"], 5)) for r in rows if r["metric"] in ("train/loss", "val/loss")]  # noqa: E731
    assert losses(history) == losses(straight_history)


def test_nan_loss_stops_with_one_line_and_keeps_the_good_checkpoint(in_tmp, monkeypatch, capsys):
    original = LMTask.loss

    def diverging(self, batch):
        loss = original(self, batch)
        return loss * float("nan") if self.training and self.global_step >= 13 else loss

    monkeypatch.setattr(LMTask, "loss", diverging)
    code, out = run(in_tmp, "nan")
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("iclx: pretrain: the training loss became NaN/inf between steps 10 and 19")
    assert "the last good checkpoint is kept" in err
    (partial,) = (in_tmp / "cache" / "pretrain").glob("*.partial")
    checkpoint = torch.load(partial / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 10
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_bad_inputs_stop_with_one_line(in_tmp, capsys):
    def error(*overrides: str) -> str:
        code, _ = run(in_tmp, "bad", *overrides)
        assert code == 1
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert error("pretrain.seq_len=100") == "iclx: pretrain.seq_len=100 is above the model's maximum (model.max_seq_len=64)"
    assert error("data=text_files", f"data.paths={in_tmp}/none/*.txt") == f"iclx: data.paths: '{in_tmp}/none/*.txt' matches no file"
    (in_tmp / "empty.txt").write_text("\n  \n")
    assert error("data=text_files", f"data.paths={in_tmp}/empty.txt").startswith("iclx: data: the corpus is empty")
    assert error("data=text_files").startswith("iclx: data.paths is required by data 'text_files'")
    assert error("pretrain.resume=sometimes") == "iclx: pretrain.resume must be one of 'auto', 'never', got str 'sometimes'"
    assert error("stages=[generate]").startswith("iclx: no pre-trained model for this config: artifact pretrain/")


def test_non_utf8_text_is_replaced_and_reported(in_tmp):
    corpus = in_tmp / "corpus"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"{i}.txt").write_text(f"document number {i} " * 40)
    (corpus / "latin1.txt").write_bytes(("caf\xe9 " * 60).encode("latin-1"))
    code, out = run(in_tmp, "text", "data=text_files", f"data.paths={corpus}/*.txt", "tokenizer=byte",
                    "stages=[tokenize,pack]", "data.validation.fraction=0.2", "data.split=file")
    assert code == 0
    assert "1 file(s)/record(s) not valid utf-8 (undecodable bytes replaced by U+FFFD): " in (out / "iclx.log").read_text()
    packed = read_summary(out)["stages"]["pack"]
    assert packed["train_documents"] + packed["val_documents"] == 7
    meta = json.loads((artifact(in_tmp, "pack") / "meta.json").read_text())
    assert meta["vocab_size"] == 258 and meta["splits"]["train"]["tokens"] == packed["train_tokens"]
