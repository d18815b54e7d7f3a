"""The probe's training: an in-context regressor (``lsa``, ``regression_gpt``) on fresh tasks."""

from __future__ import annotations

from typing import Any

import lightning
import torch

from iclx.optim import lightning_optimizers
from iclx.probes.tasks import TaskBatch


class ProbeTraining(lightning.LightningModule):
    """Minimizes the model's own training objective; keeps the query loss of every step."""

    def __init__(self, model: torch.nn.Module, optimizer_cfg: Any, total_steps: int, compile: bool = False):
        super().__init__()
        self.model = model
        self.step_model = torch.compile(model) if compile else model
        self.optimizer_cfg = optimizer_cfg
        self.total_steps = total_steps
        self.query_losses: list[torch.Tensor] = []

    def training_step(self, batch: TaskBatch, batch_idx: int) -> torch.Tensor:
        objective, query_loss = self.step_model.training_loss(batch)
        self.query_losses.append(query_loss.detach())
        self.log("probe/train_loss", query_loss, prog_bar=True)
        return objective

    def configure_optimizers(self) -> dict[str, Any]:
        return lightning_optimizers(self.model, self.optimizer_cfg, self.total_steps)
