"""``mmr``: maximal marginal relevance (Carbonell & Goldstein 1998) over a kNN shortlist.

From the ``fetch_k`` pool examples most similar to the query, pick greedily the one maximizing

    lambda_mult * sim(query, e) - (1 - lambda_mult) * max over already chosen c of sim(e, c)

so each new demonstration is relevant but unlike those already chosen: ``lambda_mult = 1`` is
plain kNN, ``0`` pure diversity. The shortlist holds at least k examples.
"""

from __future__ import annotations

import numpy as np

from iclx.errors import ConfigError
from iclx.registry import register
from iclx.schema import EmbedderConfig
from iclx.selectors.dense import EmbeddingSelector, single_threaded_blas
from iclx.tasks.example import Example


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, k: int, lambda_mult: float) -> np.ndarray:
    """Positions (into ``relevance``/``vectors``) of the k items MMR picks, in pick order."""
    similarity = vectors @ vectors.T
    chosen = [int(np.argmax(relevance))]
    redundancy = similarity[chosen[0]].copy()  # max similarity to anything chosen so far
    for _ in range(1, k):
        gain = lambda_mult * relevance - (1 - lambda_mult) * redundancy
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        redundancy = np.maximum(redundancy, similarity[best])
    return np.asarray(chosen)


@register("selector", "mmr")
class MMRSelector(EmbeddingSelector):
    def __init__(
        self,
        embedder: EmbedderConfig | None = None,
        lambda_mult: float = 0.5,
        fetch_k: int = 32,
        index: str = "Flat",
        nprobe: int = 16,
    ):
        if not 0.0 <= lambda_mult <= 1.0:
            raise ConfigError(f"selector.lambda_mult must be in [0, 1], got {lambda_mult}")
        if fetch_k < 1:
            raise ConfigError(f"selector.fetch_k must be >= 1, got {fetch_k}")
        super().__init__(embedder, index, nprobe)
        self.lambda_mult = lambda_mult
        self.fetch_k = fetch_k

    def _select(self, queries: list[Example], k: int) -> list[list[int]]:
        chosen = []
        with single_threaded_blas():
            for ids, sims in self.shortlist(queries, max(self.fetch_k, k)):
                order = mmr_order(sims, self.pool_vectors[ids], k, self.lambda_mult)
                chosen.append(ids[order].tolist())
        return chosen
