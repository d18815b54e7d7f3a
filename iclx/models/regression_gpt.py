"""A small GPT-style transformer that regresses in context (Garg et al. 2022), for the probe.

It reads the examples as a sequence of 2n + 1 tokens x_1, y_1, ..., x_n, y_n, x_q, each a vector in
R^(d+1) (an input as (x, 0), a label as (0, ..., 0, y)), mapped to ``width`` dimensions by a linear
read-in plus a learned position embedding, then runs the pre-norm blocks of the ``gpt`` language
model (iclx.models.gpt: causal softmax self-attention and a GELU MLP). A linear head on the
final-norm output at the token of x_i predicts y_i, so every position is an in-context prediction
from the i - 1 examples before it.

Training minimises the squared error at every input position (as Garg et al. do; the query's is
the one the probe reports). ``layer_predictions`` applies the final norm and head to the residual
stream after each block, a logit-lens style readout, for the probe's layer-wise comparison.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iclx.errors import ConfigError
from iclx.models.gpt import Block
from iclx.registry import register


@register("model", "regression_gpt")
class RegressionGPT(nn.Module):
    def __init__(
        self,
        d: int,
        layers: int = 3,
        width: int = 64,
        heads: int = 4,
        mlp_ratio: int = 4,
        max_examples: int = 64,
        dropout: float = 0.0,
    ):
        """``max_examples``: the longest context (n + 1 examples with the query) it can read."""
        super().__init__()
        if width % heads:
            raise ConfigError(f"model.width ({width}) must be a multiple of model.heads ({heads})")
        self.d = d
        self.max_examples = max_examples
        self.read_in = nn.Linear(d + 1, width)
        self.position = nn.Embedding(2 * max_examples, width)
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio * width, dropout, bias=True, rotary=None) for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 1)

    def _tokens(self, batch) -> Tensor:
        """[B, 2n + 1, d + 1]: x_1, y_1, ..., x_n, y_n, x_q."""
        b, n, d = batch.xs.shape
        if n + 1 > self.max_examples:
            raise ConfigError(f"probe.n = {n} needs model.max_examples >= {n + 1}, got {self.max_examples}")
        inputs = F.pad(torch.cat([batch.xs, batch.xq.unsqueeze(1)], dim=1), (0, 1))  # (x, 0)
        labels = F.pad(batch.ys.unsqueeze(-1), (d, 0))  # (0, y)
        tokens = torch.stack([inputs[:, :n], labels], dim=2).reshape(b, 2 * n, d + 1)
        return torch.cat([tokens, inputs[:, n:]], dim=1)

    def _residual_streams(self, batch) -> list[Tensor]:
        """The hidden states at the input tokens after each block (positions of x_1 .. x_n, x_q)."""
        tokens = self._tokens(batch)
        h = self.read_in(tokens) + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        streams = []
        for block in self.blocks:
            h = block(h)
            streams.append(h[:, 0::2])
        return streams

    def _read_out(self, h: Tensor) -> Tensor:
        return self.head(self.final_norm(h)).squeeze(-1)

    def layer_predictions(self, batch) -> Tensor:
        return torch.stack([self._read_out(h[:, -1]) for h in self._residual_streams(batch)], dim=-1)

    def forward(self, batch) -> Tensor:
        return self._read_out(self._residual_streams(batch)[-1][:, -1])

    def training_loss(self, batch) -> tuple[Tensor, Tensor]:
        predictions = self._read_out(self._residual_streams(batch)[-1])  # [B, n + 1]
        targets = torch.cat([batch.ys, batch.yq.unsqueeze(1)], dim=1)
        return F.mse_loss(predictions, targets), F.mse_loss(predictions[:, -1], batch.yq)
