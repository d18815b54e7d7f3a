"""EPR's retriever training: a dual encoder (query and candidate towers) trained with InfoNCE.

The selector (iclx.selectors.epr) mines the positives and hard negatives from the LM's scores;
this module only trains on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning
import torch
import torch.nn.functional as F
from torch import nn

from iclx.optim import lightning_optimizers


class ContrastiveTraining(lightning.LightningModule):
    """InfoNCE: each query's own positive against all positives and hard negatives of the batch."""

    def __init__(self, encoder: nn.Module, temperature: float, optimizer: Mapping[str, Any], total_steps: int):
        super().__init__()
        self.encoder = encoder
        self.temperature = temperature
        self.optimizer_cfg = dict(optimizer)
        self.total_steps = total_steps
        self.losses: list[float] = []

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        query_vec, positive_vec, negative_vec, query_id, positive_id, negative_id = batch
        queries = self.encoder.query(query_vec)
        candidates = self.encoder.candidate(torch.cat([positive_vec, negative_vec]))
        logits = queries @ candidates.T / self.temperature
        # another query's candidate that is this query's positive too, or the query itself, is no negative
        candidate_id = torch.cat([positive_id, negative_id])
        own = torch.arange(len(queries), device=logits.device)
        not_negative = (candidate_id[None, :] == positive_id[:, None]) | (candidate_id[None, :] == query_id[:, None])
        not_negative[own, own] = False
        logits = logits.masked_fill(not_negative, float("-inf"))
        loss = F.cross_entropy(logits, own)
        self.losses.append(float(loss.detach()))
        self.log("epr/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        return lightning_optimizers(self.encoder, self.optimizer_cfg, self.total_steps)
