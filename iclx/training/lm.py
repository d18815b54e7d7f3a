"""Pre-training a causal LM with Lightning: the LightningModule, the DataModule, the loss history.

:class:`LMTask` trains any :class:`~iclx.models.causal_lm.CausalLM` by next-token cross-entropy
(maximum likelihood); its ``.ckpt`` files carry the model's config, so ``load_model`` rebuilds the
model from a checkpoint alone. :class:`WindowDataModule` serves the packed windows: the shuffled
training stream starts where the restored ``global_step`` left it, so a resumed run sees exactly
the windows an uninterrupted one would.

Per-step overhead is kept off the hot path: losses are logged (and checked for NaN/inf, which
needs a host sync on GPUs) every ``log_every_n_steps`` steps and before each checkpoint, not at
every step.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from iclx.data.packing import TokenStream, read_meta
from iclx.data.windows import EvalSampler, WindowDataset, WindowSampler
from iclx.errors import ConfigError, DataError, IclxError
from iclx.models.bundle import build_model
from iclx.optim import lightning_optimizers

log = logging.getLogger("iclx")


class TrainingDiverged(IclxError):
    """The loss became NaN or infinite."""


class LMTask(L.LightningModule):
    def __init__(self, model_spec: dict[str, Any], vocab_size: int, optimizer: dict[str, Any], total_steps: int,
                 compile: bool = False):
        super().__init__()
        self.save_hyperparameters()  # model_spec and vocab_size rebuild the model from any .ckpt
        self.model = build_model(dict(model_spec), vocab_size)
        self.optimizer_cfg, self.total_steps = optimizer, total_steps
        # the compiled callable is not a submodule, so state_dict keys stay those of the plain model
        self._forward = torch.compile(self.model) if compile else self.model
        self._nonfinite = torch.zeros((), dtype=torch.bool)
        self._checked_step = 0
        self._val_sum = self._val_count = None
        self.last_val_step = -1  # the step of the latest validation, so the stage need not repeat it

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self._forward(batch[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self._nonfinite = self._nonfinite.to(loss.device) | ~torch.isfinite(loss.detach())
        # the same steps as Lightning's logger and the callbacks: those that complete a multiple of N
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self._check_finite()
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _check_finite(self) -> None:
        if bool(self._nonfinite):
            raise TrainingDiverged(
                f"pretrain: the training loss became NaN/inf between steps {self._checked_step} and {self.global_step}; "
                "the last good checkpoint is kept (lower optimizer.lr, or set trainer.gradient_clip_val)"
            )
        self._checked_step = self.global_step

    def on_validation_epoch_start(self) -> None:
        self._val_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self._val_count = torch.zeros((), device=self.device, dtype=torch.float64)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._val_sum += self.loss(batch).double() * batch[:, 1:].numel()
        self._val_count += batch[:, 1:].numel()

    def on_validation_epoch_end(self) -> None:
        total = self.trainer.strategy.reduce(torch.stack([self._val_sum, self._val_count]), reduce_op="sum")
        loss = (total[0] / total[1].clamp(min=1)).float()
        self.log_dict({"val/loss": loss, "val/ppl": loss.exp()}, prog_bar=True, sync_dist=False)
        self.last_val_step = self.global_step

    def configure_optimizers(self) -> dict[str, Any]:
        return lightning_optimizers(self.model, self.optimizer_cfg, self.total_steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_finite()  # raising here keeps the previous, good checkpoint on disk
        checkpoint["iclx_rng"] = {"torch": torch.get_rng_state()}  # dropout masks continue after a resume
        if torch.cuda.is_available():
            checkpoint["iclx_rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("iclx_rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self._checked_step = int(checkpoint.get("global_step", 0))


class _ResumableLoader(DataLoader):
    """A DataLoader Lightning treats as stateful: the checkpoint records which stream it serves,
    and a resume refuses a different one (the position itself comes from the restored step)."""

    def __init__(self, *args: Any, stream_id: dict[str, Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stream_id = stream_id

    def state_dict(self) -> dict[str, Any]:
        return dict(self.stream_id)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and state != self.stream_id:
            changed = ", ".join(f"{k} {state.get(k)} -> {v}" for k, v in self.stream_id.items() if state.get(k) != v)
            raise ConfigError(f"pretrain: cannot resume, the training stream changed ({changed}); set pretrain.resume=never")


class WindowDataModule(L.LightningDataModule):
    def __init__(self, packed_dir: str | Path, seq_len: int, batch_size: int, seed: int, max_steps: int,
                 accumulate_grad_batches: int = 1, val_windows: int | None = None, num_workers: int = 0):
        super().__init__()
        self.packed_dir, self.seq_len, self.batch_size, self.seed = Path(packed_dir), seq_len, batch_size, seed
        self.max_steps, self.accumulate, self.val_windows, self.num_workers = max_steps, accumulate_grad_batches, val_windows, num_workers
        meta = read_meta(self.packed_dir)
        self.train_set = WindowDataset(TokenStream(self.packed_dir, "train", meta), seq_len)
        self.val_set = WindowDataset(TokenStream(self.packed_dir, "val", meta), seq_len) if "val" in meta["splits"] else None

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        step = self.trainer.global_step if self.trainer is not None else 0
        per_step = self.accumulate * self.batch_size
        sampler = WindowSampler(len(self.train_set), self.seed, total=self.max_steps * per_step,
                                start=step * per_step, rank=rank, world_size=world)
        stream_id = {"windows": len(self.train_set), "seq_len": self.seq_len, "seed": self.seed,
                     "batch_size": self.batch_size, "world_size": world}
        return _ResumableLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                                num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                                stream_id=stream_id)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        rank, world = self._rank()
        sampler = EvalSampler(len(self.val_set), self.val_windows, rank=rank, world_size=world)
        return DataLoader(self.val_set, batch_size=self.batch_size, sampler=sampler, num_workers=0)


class LossHistory(L.Callback):
    """The loss curve of one pre-training artifact, across kills and resumes: ``history.csv``
    (step, metric, value) in the artifact folder; rows after the resumed step are dropped, since
    the resumed run redoes those steps."""

    FIELDS = ("step", "metric", "value")
    TRAIN = ("train/loss", "train/lr", "train/tokens_per_s", "train/mfu")

    def __init__(self, path: Path):
        self.path = path

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:  # after a resume restored the step
        rows = read_history(self.path) if self.path.is_file() else []
        kept = [r for r in rows if r["step"] <= trainer.global_step]
        self._write(kept, mode="w")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if trainer.global_step % trainer.log_every_n_steps == 0:
            self._append(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._append(trainer, only=("val/loss",))

    def _append(self, trainer: Any, only: tuple[str, ...] | None = None) -> None:
        if trainer.global_rank != 0:
            return
        metrics = trainer.callback_metrics
        rows = [{"step": trainer.global_step, "metric": k, "value": float(metrics[k])}
                for k in (only or self.TRAIN) if k in metrics and math.isfinite(float(metrics[k]))]
        self._write(rows, mode="a")

    def _write(self, rows: list[dict[str, Any]], mode: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = mode == "w" or not self.path.is_file()
        with open(self.path, mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)


def read_history(path: Path) -> list[dict[str, Any]]:
    """The rows of a loss history; a last row cut short (a kill in the middle of its write) is left
    out with a warning, a bad row elsewhere is an error naming its line."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    history = []
    for line, r in enumerate(rows, 2):
        try:
            history.append({"step": int(r["step"]), "metric": r["metric"], "value": float(r["value"])})
        except (TypeError, ValueError, KeyError) as e:
            if line - 2 == len(rows) - 1:
                log.warning("%s: its last row (line %d) was cut short and is left out (%s)", path, line, e)
                continue
            raise DataError(f"{path}:{line}: not a history row (step, metric, value): {dict(r)}") from None
    return history
