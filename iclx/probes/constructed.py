"""Linear self-attention with hand-set weights that runs gradient descent exactly.

With the conventions of iclx.models.lsa (sparse P = [[0, 0], [0, 1]], Q_l = [[A_l, 0], [0, 0]],
prediction = minus the query's label slot), setting A_l = -eta_l I makes layer l one GD step
theta <- theta + eta_l/n sum_i (y_i - theta^T x_i) x_i from theta_0 = 0 (von Oswald et al. 2023,
Prop. 1; Ahn et al. 2023, Lemma 1). The probe checks the construction against the GD reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from iclx.models.lsa import LinearSelfAttention


def gd_lsa(d: int, steps: Sequence[float], dtype: torch.dtype = torch.float32) -> LinearSelfAttention:
    """An LSA with one layer per GD step; ``steps`` are the step sizes eta_l."""
    model = LinearSelfAttention(d=d, layers=len(steps)).to(dtype)
    eye = torch.eye(d, dtype=dtype)
    with torch.no_grad():
        model.key_query.copy_(torch.stack([-float(eta) * eye for eta in steps]))
    return model.requires_grad_(False)


def one_gd_step_lsa(d: int, step: float, dtype: torch.dtype = torch.float32) -> LinearSelfAttention:
    """The one-layer LSA whose prediction is exactly one GD step with step size ``step``."""
    return gd_lsa(d, [step], dtype)
