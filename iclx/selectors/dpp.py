"""``dpp``: a determinantal point process over a kNN shortlist, relevance-weighted, greedy MAP.

The kernel over the ``fetch_k`` most similar pool examples is L = diag(q) S diag(q): S holds their
pairwise cosine similarities (a Gram matrix, so positive semi-definite) and q_i = exp(alpha * r_i)
their quality, r_i being the cosine to the query. A set Y then scores

    log det L_Y = 2 * alpha * sum of r_i over Y  +  log det S_Y

relevance plus volume: near-duplicates span little volume, so the set spreads out. ``alpha = 0``
ignores the query past the shortlist; large ``alpha`` approaches kNN. The set is grown greedily,
each step adding the item with the largest gain in log det, with the incremental Cholesky update
of Chen et al. 2018 ("Fast greedy MAP inference for DPP"), O(fetch_k * k) per step; the first pick
is the most relevant example. Once the kernel is exhausted (only items the chosen ones already
span remain, e.g. duplicates), the rest are filled in order of relevance.
"""

from __future__ import annotations

import numpy as np

from iclx.errors import ConfigError
from iclx.registry import register
from iclx.schema import EmbedderConfig
from iclx.selectors.dense import EmbeddingSelector, single_threaded_blas
from iclx.tasks.example import Example

EXHAUSTED = 1e-9  # a residual variance below this adds no volume


def greedy_map(kernel: np.ndarray, k: int) -> np.ndarray:
    """Positions of k items chosen greedily to maximize log det of ``kernel`` restricted to them."""
    kernel = np.asarray(kernel, dtype=np.float64)
    size = len(kernel)
    cholesky_rows = np.zeros((k, size))
    residual = np.diag(kernel).copy()  # d_i^2: variance of item i not explained by the chosen set
    quality = residual.copy()
    chosen: list[int] = []
    for step in range(k):
        gains = np.where(np.isin(np.arange(size), chosen), -np.inf, residual)
        best = int(np.argmax(gains))
        if gains[best] <= EXHAUSTED:
            rest = [i for i in np.argsort(-quality, kind="stable") if i not in chosen]
            chosen.extend(int(i) for i in rest[: k - step])
            break
        chosen.append(best)
        e = (kernel[best] - cholesky_rows[:step].T @ cholesky_rows[:step, best]) / np.sqrt(residual[best])
        cholesky_rows[step] = e
        residual = residual - e**2
    return np.asarray(chosen)


@register("selector", "dpp")
class DPPSelector(EmbeddingSelector):
    def __init__(
        self,
        embedder: EmbedderConfig | None = None,
        alpha: float = 3.0,
        fetch_k: int = 32,
        index: str = "Flat",
        nprobe: int = 16,
    ):
        if alpha < 0:
            raise ConfigError(f"selector.alpha must be >= 0, got {alpha}")
        if fetch_k < 1:
            raise ConfigError(f"selector.fetch_k must be >= 1, got {fetch_k}")
        super().__init__(embedder, index, nprobe)
        self.alpha = alpha
        self.fetch_k = fetch_k

    def _select(self, queries: list[Example], k: int) -> list[list[int]]:
        chosen = []
        with single_threaded_blas():
            for ids, sims in self.shortlist(queries, max(self.fetch_k, k)):
                vectors = self.pool_vectors[ids]
                quality = np.exp(self.alpha * sims.astype(np.float64))
                kernel = quality[:, None] * (vectors @ vectors.T).astype(np.float64) * quality[None, :]
                chosen.append(ids[greedy_map(kernel, k)].tolist())
        return chosen
