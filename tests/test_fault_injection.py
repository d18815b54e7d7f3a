"""Fault injection: every kind of cached artifact damaged in each common way, then the same command.

One baseline run builds every artifact kind (tokenizer, pack, pretrain, hardware, embeddings,
retriever). Each case copies its cache, damages one file of one artifact (a block overwritten in
the middle with the size unchanged, the file truncated, the file deleted) and runs the same
command again: the damage must be detected, named in one warning, the artifact rebuilt, and the
run's results equal the undamaged run's. A damaged resume checkpoint (``last.ckpt`` of a killed
pre-training) is set aside and training resumes from the next good checkpoint or from scratch,
to the same weights. The default run takes one damage per kind; ``-m slow`` takes all of them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from iclx import integrity
from iclx.cli import run_cli
from iclx.models.bundle import load_model
from iclx.training.lm import LMTask

from conftest import read_summary

SMALL = [
    "experiment=ginc_selectors", "data.n_documents=200", "trainer.enable_progress_bar=false",
    "pretrain.max_steps=20", "pretrain.val_every=10", "pretrain.checkpoint_every=10", "pretrain.val_windows=2",
    "pretrain.batch_size=4", "pretrain.samples.n=1", "pretrain.samples.max_new_tokens=4",
    "optimizer.schedule.warmup_steps=1", "task.n_queries=12", "task.pool_size=60", "evaluate.shots=[0,2]",
    "evaluate.selectors=[knn,epr]", "selector=epr", "selector.train_queries=16", "selector.candidates=8", "selector.steps=2",
]
KINDS = ("tokenizer", "pack", "pretrain", "hardware", "embeddings", "retriever")
DAMAGES = ("overwrite", "truncate", "delete")
FAST = {("tokenizer", "delete"), ("pack", "truncate"), ("pretrain", "overwrite"), ("hardware", "delete"),
        ("embeddings", "overwrite"), ("retriever", "truncate")}


def run(work: Path, name: str, *overrides: str) -> tuple[int, Path]:
    out = work / name
    return run_cli([*SMALL, *overrides, f"hydra.run.dir={out}"]), out


def results(out: Path) -> dict:
    """What a damaged artifact must not change: pre-training's losses and every evaluate metric."""
    stages = read_summary(out)["stages"]
    pre = {k: stages["pretrain"][k] for k in ("steps", "train_loss", "val_loss")}
    return {"pretrain": pre, "evaluate": {k: v for k, v in stages["evaluate"].items() if "seconds" not in k}}


def artifact(cache: Path, kind: str) -> Path:
    """The kind's artifact in ``cache``; of several (embeddings of the pool and of the queries), the biggest."""
    folders = [p for p in (cache / kind).iterdir() if p.is_dir() and not p.name.endswith(".partial")]
    assert folders, f"no {kind} artifact in {cache}"
    return max(folders, key=lambda f: (sum(p.stat().st_size for p in f.rglob("*") if p.is_file()), f.name))


def damage(folder: Path, how: str) -> str:
    """Damage the largest file of an artifact (the manifest aside); its name relative to the folder."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "artifact.json" and not p.name.endswith(".sha256")]
    target = max(files, key=lambda p: (p.stat().st_size, p.name))
    size = target.stat().st_size
    if how == "overwrite":
        with open(target, "r+b") as f:
            f.seek(size // 2)
            block = f.read(16)
            f.seek(size // 2)
            f.write(bytes(b ^ 0xFF for b in block))
        assert target.stat().st_size == size
    elif how == "truncate":
        os.truncate(target, size // 2)
    else:
        target.unlink()
    return target.relative_to(folder).as_posix()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("ICLX_CACHE_DIR", str(work / "cache"))
        mp.setenv("WANDB_MODE", "disabled")
        code, out = run(work, "baseline")
        assert code == 0, read_summary(out).get("error")
    for kind in KINDS:
        artifact(work / "cache", kind)  # every kind was built
    return work, results(out)


@pytest.mark.parametrize(
    ("kind", "how"),
    [pytest.param(k, h, marks=[] if (k, h) in FAST else [pytest.mark.slow]) for k in KINDS for h in DAMAGES],
)
def test_a_damaged_artifact_is_named_rebuilt_and_gives_the_same_results(baseline, kind, how, tmp_path, monkeypatch):
    work, expected = baseline
    cache = tmp_path / "cache"
    shutil.copytree(work / "cache", cache)
    folder = artifact(cache, kind)
    name = damage(folder, how)
    if kind == "hardware":  # read only when a model trains: let it train again
        shutil.rmtree(artifact(cache, "pretrain"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ICLX_CACHE_DIR", str(cache))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    code, out = run(tmp_path, "again")
    assert code == 0, read_summary(out).get("error")
    log = _log_of(out)
    warnings = [line for line in log.splitlines() if "[WARNING]" in line and "is damaged" in line]
    assert len(warnings) == 1, warnings
    assert f"[WARNING] - {kind} artifact {folder.name} is damaged ({name} " in warnings[0]
    assert re.search(rf"building {kind} artifact {folder.name} \(the cached one is damaged: {re.escape(name)} ", log)
    assert results(out) == expected
    # the rebuilt artifact is whole again, and nothing was left half-done
    assert integrity.damage(folder, "artifact.json", full=True) is None
    assert not list(cache.glob("*/*.partial")) and not list(cache.glob("*/*.stale-*"))


def _log_of(out: Path) -> str:
    return (out / "iclx.log").read_text()


# --- a damaged resume checkpoint --------------------------------------------------------------------

TINY = [
    "~experiment", "stages=[tokenize,pack,pretrain]", "trainer.enable_progress_bar=false", "model.n_layer=1",
    "model.d_model=32", "model.n_head=2", "model.max_seq_len=64", "optimizer.lr=3e-3", "optimizer.schedule.warmup_steps=5",
    "pretrain.batch_size=4", "trainer.max_steps=30", "pretrain.val_every=10", "pretrain.checkpoint_every=10",
    "pretrain.val_windows=8", "pretrain.samples.n=2", "pretrain.samples.max_new_tokens=8",
    "data.n_documents=40", "data.document_length=200", "data.validation.fraction=0.1",
]


def tiny(work: Path, name: str, *overrides: str) -> tuple[int, Path]:
    out = work / name
    return run_cli([*TINY, *overrides, f"hydra.run.dir={out}"]), out


@pytest.fixture
def straight_weights(in_tmp, monkeypatch):
    monkeypatch.setenv("ICLX_CACHE_DIR", str(in_tmp / "straight-cache"))
    assert tiny(in_tmp, "straight")[0] == 0
    model, _ = load_model(artifact(in_tmp / "straight-cache", "pretrain"))
    monkeypatch.setenv("ICLX_CACHE_DIR", str(in_tmp / "cache"))
    return model.state_dict()


def crash_at_step(monkeypatch, step: int) -> None:
    original = LMTask.training_step

    def crashing(self, batch, batch_idx):
        if self.global_step == step:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LMTask, "training_step", crashing)


@pytest.mark.parametrize(
    ("damaged", "resumes_from", "extra"),
    [
        (("last.ckpt",), "best.ckpt", []),               # the last good one
        (("last.ckpt", "best.ckpt"), None, []),          # nothing good left: from scratch
        (("last.ckpt",), "best.ckpt", ["force=true"]),   # force=true wins over the damaged one too
    ],
    ids=["last", "last-and-best", "force"],
)
def test_a_damaged_resume_checkpoint_is_set_aside(in_tmp, straight_weights, monkeypatch, damaged, resumes_from, extra):
    with monkeypatch.context() as crash:
        crash_at_step(crash, 27)  # checkpoints at steps 10 and 20 (best.ckpt at a validation step)
        code, _ = tiny(in_tmp, "killed")
    assert code == 1
    (partial,) = (in_tmp / "cache" / "pretrain").glob("*.partial")
    checkpoints = partial / "checkpoints"
    for name in damaged:
        damage_file(checkpoints / name)
    code, out = tiny(in_tmp, "resumed", *extra)
    assert code == 0, read_summary(out).get("error")
    log = _log_of(out)
    for name in damaged:
        assert re.search(rf"pretrain: checkpoint \S+/{re.escape(name)} is damaged \(.*\): set aside as {name}.damaged", log)
    if resumes_from:
        assert f"pretrain: resuming from {checkpoints / resumes_from}" in log
    else:
        assert "pretrain: resuming from" not in log
    model, _ = load_model(artifact(in_tmp / "cache", "pretrain"))
    for (name, a), b in zip(straight_weights.items(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    finished = artifact(in_tmp / "cache", "pretrain") / "checkpoints"
    assert not list(finished.glob("*.damaged"))  # set aside during the build, not kept in the artifact


def damage_file(path: Path) -> None:
    """Overwrite 16 bytes in the middle, size unchanged: loads without the recorded checksum."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\x00" * 16)
    assert path.stat().st_size == size


# --- a full disk ------------------------------------------------------------------------------------


def test_a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(in_tmp, straight_weights, monkeypatch, capsys):
    import errno

    real_save, saves = torch.save, []

    def save_until_full(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 3:  # the first checkpoint of step 20; step 10's last.ckpt and best.ckpt are on disk
            f.write(b"partial bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    with monkeypatch.context() as full:
        full.setattr(torch, "save", save_until_full)
        code, out = tiny(in_tmp, "full")
    assert code == 1
    (partial,) = (in_tmp / "cache" / "pretrain").glob("*.partial")
    last = partial / "checkpoints" / "last.ckpt"
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("iclx:")]
    assert len(err) == 1
    assert re.fullmatch(rf"iclx: the disk is full while writing {re.escape(str(last.parent))}/(last|best)\.ckpt: the "
                        "previous version is kept; free space and run again", err[-1]), err[-1]
    assert read_summary(out)["status"] == "failed"
    for name in ("last.ckpt", "best.ckpt"):
        assert torch.load(last.parent / name, weights_only=True)["global_step"] == 10
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.ckpt", "best.ckpt.sha256", "last.ckpt", "last.ckpt.sha256"]
    code, out = tiny(in_tmp, "after")  # space freed: the same command continues from step 10
    assert code == 0 and "pretrain: resuming from" in _log_of(out)
    model, _ = load_model(artifact(in_tmp / "cache", "pretrain"))
    for (name, a), b in zip(straight_weights.items(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_a_full_disk_while_packing_leaves_no_partial_and_says_so(in_tmp, monkeypatch, capsys):
    import errno

    from iclx.data.packing import ShardWriter

    def full(self, ids):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.folder / f"{self.split}-00000.bin"))

    monkeypatch.setattr(ShardWriter, "write", full)
    code, out = tiny(in_tmp, "full")
    assert code == 1
    (err,) = re.findall(r"iclx: .*", capsys.readouterr().err)  # (after an unfinished progress bar's text)
    assert re.fullmatch(r"iclx: the disk is full while writing \S+/pack/\w+\.partial/\w+-00000\.bin \(no space left on device\): what was "
                        r"complete before is kept; free space and run the same command again", err), err
    assert not [p for p in (in_tmp / "cache" / "pack").iterdir() if p.is_dir()]  # no .partial


def test_a_history_row_cut_short_by_a_kill_is_left_out_and_a_bad_row_elsewhere_named(tmp_path):
    from iclx.errors import DataError
    from iclx.training.lm import read_history

    path = tmp_path / "history.csv"
    path.write_text("step,metric,value\n10,train/loss,2.5\n10,val/loss,2.6\n20,train/lo")
    assert read_history(path) == [{"step": 10, "metric": "train/loss", "value": 2.5}, {"step": 10, "metric": "val/loss", "value": 2.6}]
    path.write_text("step,metric,value\n10,train/loss,oops\n20,train/loss,2.4\n")
    with pytest.raises(DataError, match=r"history.csv:2: not a history row"):
        read_history(path)
