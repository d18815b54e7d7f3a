"""Lightning's progress bar for logs: one line per interval instead of a redrawn bar.

``build_trainer`` adds it in place of Lightning's bar when output is not a terminal (see
``iclx.progress``): ``pretrain: step 1200/2200 (55%), loss 2.41, val/loss 2.40, 19.2k tokens/s,
ETA 48s``. tokens/s is what ``TokenThroughput`` last measured (``train/tokens_per_s``), so the
log and the logged metric agree; a training without it shows steps per second instead.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from iclx.progress import ProgressLines, number

TOKENS_PER_S = "train/tokens_per_s"  # logged by iclx.training.throughput.TokenThroughput


class LogProgress(ProgressBar):
    """A Lightning ``ProgressBar`` that writes ``ProgressLines`` about the training steps, with the
    progress-bar metrics (``self.log(..., prog_bar=True)``: the loss, the last validation's)."""

    def __init__(self, desc: str = "train", interval_s: float | None = None):
        super().__init__()
        self.desc, self.interval_s = desc, interval_s
        self.enabled = True
        self.lines: ProgressLines | None = None

    def disable(self) -> None:  # Lightning calls this on every rank but 0, and around e.g. its LR finder
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.lines = ProgressLines(self.desc, total=total, unit="step", interval_s=self.interval_s, unit_first=True)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.enabled and self.lines is not None:
            self.lines.show_rate = TOKENS_PER_S not in trainer.callback_metrics  # steps/s only without tokens/s
            self.lines.advance_to(trainer.global_step, lambda: self.figures(trainer, pl_module))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.enabled and self.lines is not None:
            self.lines.close(self.figures(trainer, pl_module))
        self.lines = None

    def figures(self, trainer: Any, pl_module: Any) -> list[str]:
        """The progress-bar metrics as ``name value``, then tokens/s."""
        shown = []
        for name, value in self.get_metrics(trainer, pl_module).items():
            if name == "v_num":  # the logger's version: a bar's label, not progress
                continue
            shown.append(f"{'loss' if name == 'train/loss' else name} {value:.4g}" if isinstance(value, float)
                         else f"{name} {value}")
        tokens_per_s = trainer.callback_metrics.get(TOKENS_PER_S)
        if tokens_per_s is not None:
            shown.append(f"{number(float(tokens_per_s))} tokens/s")
        return shown
