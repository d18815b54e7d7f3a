"""Checkpoints that survive kills and full disks, and the choice of one to resume from.

Lightning writes a checkpoint through fsspec, whose temporary file may live on another file
system (then the final move is a copy that a kill or a full disk can cut short). Here a checkpoint
is written beside its final name, flushed to disk and renamed over it, so ``last.ckpt`` is always
the previous whole checkpoint or the new whole one; ``last.ckpt.sha256`` beside it holds its size
and hash. A checkpoint that does not match them when a run resumes (damaged on disk since, even
with its size unchanged) or cannot be read is set aside with a warning, and training continues
from the next good one (``best.ckpt``: data windows depend only on the step, so an earlier step
resumes exactly too) or from scratch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from iclx.artifacts import atomic_open
from iclx.integrity import sha256_file

log = logging.getLogger("iclx")

DAMAGED_SUFFIX = ".damaged"
CHECKSUM_SUFFIX = ".sha256"


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb", sync=True) as f:
            torch.save(checkpoint, f)
            f.flush()
            record = f"{sha256_file(Path(f.name))} {os.fstat(f.fileno()).st_size}\n"
        with atomic_open(_checksum_file(path), sync=True) as f:
            f.write(record)

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        _checksum_file(Path(path)).unlink(missing_ok=True)


def _checksum_file(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def resume_checkpoint(ckpt_dir: Path, names: tuple[str, ...] = ("last.ckpt", "best.ckpt"), *, check: bool = True) -> Path | None:
    """The first of ``names`` in ``ckpt_dir`` that loads; each one that does not is renamed
    ``<name>.damaged`` with a warning (``check=False``: the first that exists)."""
    for name in names:
        path = ckpt_dir / name
        if not path.is_file():
            continue
        problem = unreadable(path) if check else None
        if problem is None:
            return path
        aside = path.with_name(path.name + DAMAGED_SUFFIX)
        os.replace(path, aside)
        _checksum_file(path).unlink(missing_ok=True)
        log.warning("pretrain: checkpoint %s is damaged (%s): set aside as %s; resuming from %s", path, problem,
                    aside.name, _next_choice(ckpt_dir, names[names.index(name) + 1:]))
    return None


def unreadable(path: Path) -> str | None:
    """Why ``path`` is not a loadable training checkpoint, or None."""
    import torch

    recorded = _checksum_file(path)
    if recorded.is_file():  # written with the checkpoint (older checkpoints have none)
        digest, _, size = recorded.read_text().strip().partition(" ")
        if str(path.stat().st_size) != size:
            return f"{path.stat().st_size:,} bytes, {int(size):,} when written"
        if sha256_file(path) != digest:
            return "its checksum differs from the one written with it"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 -- any failure to read it means it cannot be resumed from
        first = str(e).splitlines()[0] if str(e) else ""
        return f"{type(e).__name__}: {first[:160]}"
    if not isinstance(payload, dict) or "state_dict" not in payload or "global_step" not in payload:
        return "not a Lightning training checkpoint"
    return None


def remove_damaged(ckpt_dir: Path) -> None:
    """After a build that finished, the set-aside checkpoints are not worth keeping in the artifact."""
    for path in sorted(ckpt_dir.glob(f"*{DAMAGED_SUFFIX}")):
        log.info("pretrain: removing %s (training finished without it)", path)
        path.unlink(missing_ok=True)


def _next_choice(ckpt_dir: Path, rest: tuple[str, ...]) -> str:
    for name in rest:
        if (ckpt_dir / name).is_file():
            return name
    return "scratch (no other checkpoint)"
