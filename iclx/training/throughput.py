"""Training speed: tokens/s and model FLOPs utilization (MFU) against a measured matmul peak.

MFU = (tokens/s x training FLOPs per token) / peak FLOP/s, where the peak is what a large matmul
actually reaches on this machine in the precision in use (not a datasheet number): on a CPU the
datasheet says little, and the same measurement serves CPUs and GPUs.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

MATMUL_SIZE = 2048


def matmul_peak_flops(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                      size: int = MATMUL_SIZE, seconds: float = 0.5) -> float:
    """FLOP/s of repeated (size x size) @ (size x size) products, the best of a ~``seconds`` run."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b  # warm up (kernel selection, allocation)
    sync()
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        a @ b
        sync()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
    return 2.0 * size**3 / best


def precision_dtype(precision: str) -> torch.dtype:
    """The matmul dtype of a Lightning precision setting."""
    p = str(precision)
    if p.startswith("bf16"):
        return torch.bfloat16
    if p.startswith("16"):
        return torch.float16
    return torch.float32


class TokenThroughput(L.Callback):
    """Logs ``train/tokens_per_s``, ``train/mfu``, ``train/lr`` and ``train/tokens`` every
    ``log_every_n_steps`` steps, over the steps since the last log (validation time excluded).

    Not Lightning's ``ThroughputMonitor``: that one takes the peak from a table of datasheet
    figures (``lightning.fabric.utilities.throughput.get_available_flops``), which has none for
    CPUs, so it reports no MFU where iclx mostly runs; it averages over a window of batches with a
    CUDA sync after each; and it logs other names (``train/device/mfu``, ...), which W&B
    dashboards and summary.json already read here. Its arithmetic (``Throughput``) is the three
    lines below, so it is not worth the change of names and windows.
    """

    def __init__(self, tokens_per_step: int, flops_per_token: float, peak_flops: float | None):
        self.tokens_per_step, self.flops_per_token, self.peak_flops = tokens_per_step, flops_per_token, peak_flops
        self._t0: float | None = None
        self._step0 = 0
        self._paused_at: float | None = None
        self.steps, self.seconds = 0, 0.0  # measured in all (first step and validation excluded)

    def mean(self) -> dict[str, float]:
        """tokens/s and MFU over every measured step, for the run's summary."""
        if not self.seconds:
            return {}
        tokens_per_s = self.steps * self.tokens_per_step / self.seconds
        out = {"tokens_per_s": tokens_per_s}
        if self.peak_flops:
            out["mfu"] = tokens_per_s * self.flops_per_token / self.peak_flops
        return out

    def _now(self, trainer: Any) -> float:
        if trainer.strategy.root_device.type == "cuda":  # queued kernels would otherwise look free
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self._t0 is None:  # the first step includes warm-up: measure from its end
            self._t0, self._step0 = self._now(trainer), step
            return
        if step == self._step0 or step % trainer.log_every_n_steps:
            return
        now = self._now(trainer)
        seconds = max(now - self._t0, 1e-9)
        self.steps, self.seconds = self.steps + step - self._step0, self.seconds + seconds
        tokens_per_s = (step - self._step0) * self.tokens_per_step / seconds
        figures = {"train/tokens_per_s": tokens_per_s, "train/tokens": float(step * self.tokens_per_step),
                   "train/lr": trainer.optimizers[0].param_groups[0]["lr"]}
        if self.peak_flops:
            figures["train/mfu"] = tokens_per_s * self.flops_per_token / self.peak_flops
        pl_module.log_dict(figures, on_step=True, on_epoch=False, rank_zero_only=True)
        self._t0, self._step0 = now, step

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._paused_at = time.perf_counter()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._paused_at is not None and self._t0 is not None:
            self._t0 += time.perf_counter() - self._paused_at
        self._paused_at = None
