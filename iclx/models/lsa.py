"""Linear self-attention (LSA): the transformer that provably runs gradient descent in context.

Conventions (Ahn, Cheng, Daneshmand, Sra 2023; von Oswald et al. 2023), chosen so that a layer's
weights and a GD step match exactly:

- Tokens. The n context examples and the query become n + 1 tokens z = (x, y) in R^(d+1); the
  query's label slot holds 0: Z = [[x_1 .. x_n, x_q], [y_1 .. y_n, 0]] (stored token-major here).
- Layer l. Every token z_t (query included) is updated from the n context tokens only (the query
  is excluded from keys and values), without softmax, normalised by n:

      z_t <- z_t + 1/n * sum_{j <= n} (z_j^T Q_l z_t) P_l z_j

  Keys and queries read only x: Q_l = [[A_l, 0], [0, 0]] with A_l a learned d x d matrix.
  Sparse P (value reads only y, writes only y): P_l = [[0, 0], [0, 1]].
  Full P (GD++-like): P_l = [[B_l, 0], [0, 1]], so values also carry x and rewrite the inputs.
  The 1 in P_l is fixed because it would only rescale A_l.
- Readout. The prediction after layer l is minus the query's label slot: y_hat_l = -Z_l[q, d+1].

With sparse P the inputs never change, a context token's label slot holds the residual
y_i - theta_l^T x_i and the query's holds -theta_l^T x_q, where

      theta_{l+1} = theta_l + 1/n * Gamma_l sum_i (y_i - theta_l^T x_i) x_i,   Gamma_l = -A_l^T,

from theta_0 = 0: layer l is one step of preconditioned GD on R(theta) = 1/(2n) sum_i
(y_i - theta^T x_i)^2 with preconditioner Gamma_l (``preconditioners()``), and A_l = -eta I is
plain GD with step eta. With full P the inputs themselves move, x <- x + B_l C A_l x with
C = 1/n sum_j x_j x_j^T, the curvature correction of von Oswald et al.'s GD++.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iclx.registry import register


@register("model", "lsa")
class LinearSelfAttention(nn.Module):
    def __init__(
        self,
        d: int,
        layers: int = 1,
        shared: bool = False,
        full_p: bool = False,
        init_std: float = 0.01,
    ):
        """``shared``: one (A, B) reused by every layer; ``init_std``: std of A's initial entries."""
        super().__init__()
        self.d = d
        self.layers = layers
        self.shared = shared
        self.full_p = full_p
        weight_sets = 1 if shared else layers
        self.key_query = nn.Parameter(init_std * torch.randn(weight_sets, d, d))  # A_l
        # B_l starts at 0, so a full-P model starts as the sparse one and learns to use it
        self.value_x = nn.Parameter(torch.zeros(weight_sets, d, d)) if full_p else None

    def attention_weights(self, layer: int) -> tuple[Tensor, Tensor]:
        """(P_l, Q_l), each (d+1) x (d+1), laid out as in the module docstring."""
        i, d = (0 if self.shared else layer), self.d
        q = self.key_query.new_zeros(d + 1, d + 1)
        q[:d, :d] = self.key_query[i]
        p = self.key_query.new_zeros(d + 1, d + 1)
        p[d, d] = 1.0
        if self.value_x is not None:
            p[:d, :d] = self.value_x[i]
        return p, q

    def preconditioners(self) -> Tensor | None:
        """[L, d, d]: Gamma_l = -A_l^T, the preconditioner of layer l's GD step (sparse P only;
        None with full P, whose layers also move the inputs and so are not GD steps)."""
        if self.full_p:
            return None
        a = self.key_query.expand(self.layers, -1, -1) if self.shared else self.key_query
        return -a.transpose(1, 2)

    def layer_predictions(self, batch) -> Tensor:
        n = batch.n
        query = torch.cat([batch.xq, torch.zeros_like(batch.xq[:, :1])], dim=-1)
        z = torch.cat([torch.cat([batch.xs, batch.ys.unsqueeze(-1)], dim=-1), query.unsqueeze(1)], dim=1)
        readouts = []
        for layer in range(self.layers):
            p, q = self.attention_weights(layer)
            context = z[:, :n]  # keys and values: the query token is excluded
            scores = (z @ q.T) @ context.transpose(1, 2)  # [B, n+1, n]: z_j^T Q z_t
            z = z + scores @ (context @ p.T) / n
            readouts.append(-z[:, n, self.d])
        return torch.stack(readouts, dim=-1)

    def forward(self, batch) -> Tensor:
        return self.layer_predictions(batch)[:, -1]

    def training_loss(self, batch) -> tuple[Tensor, Tensor]:
        loss = F.mse_loss(self(batch), batch.yq)
        return loss, loss
