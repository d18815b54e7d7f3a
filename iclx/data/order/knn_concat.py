"""Retrieval-concatenated order (PICL, Gu et al. 2023; the kNN baseline of In-Context Pretraining).

Every document, in seeded random order, is followed by its nearest neighbours, most similar first,
until the group fills what a window reads (``window_tokens - 1`` tokens). A document therefore
appears once as an anchor and again wherever it is retrieved: the stream grows (``tokens_ratio``)
and popular documents repeat (``repeats``), the data repetition In-Context Pretraining's traversal
avoids. Neighbours above ``near_duplicate`` are not retrieved: a group never holds two copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iclx.data.document import Document
from iclx.data.order.base import OrderContext, Ordering
from iclx.data.order.neighbors import NeighbourGraphOrder
from iclx.registry import register


@register("data/order", "knn_concat")
class KNNConcatOrder(NeighbourGraphOrder):
    """``k`` bounds the neighbours per group: set it to at least the documents a window holds."""

    allows_repeats = True

    def arrange(self, docs: Sequence[Document], embeddings: np.ndarray | None, ctx: OrderContext) -> Ordering:
        assert embeddings is not None  # guaranteed by the required `embedder`
        sims, ids = self.neighbours(embeddings)
        sequence = neighbour_groups(
            sims, ids, ctx.token_counts, ctx.window_tokens, ctx.seed, near_duplicate=self.near_duplicate
        )
        tokens = np.asarray(ctx.token_counts, dtype=np.int64)
        return Ordering(
            sequence,
            stats={
                "tokens_ratio": float(tokens[sequence].sum() / max(1, tokens.sum())),
                "coverage": float(len(np.unique(sequence)) / max(1, len(docs))),
            },
        )


def neighbour_groups(
    sims: np.ndarray,
    ids: np.ndarray,
    token_counts: np.ndarray,
    window_tokens: int,
    seed: int,
    near_duplicate: float | None = None,
) -> np.ndarray:
    """Anchors in seeded random order, each followed by its neighbours (rows of ``ids``, sorted by
    decreasing similarity) while the group is shorter than what a window reads (``window_tokens - 1``)."""
    n = len(ids)
    counts = np.asarray(token_counts, dtype=np.int64)
    usable = ids >= 0
    if near_duplicate is not None:
        usable &= sims <= near_duplicate
    neighbour_tokens = np.where(usable, counts[np.maximum(ids, 0)], 0)
    # tokens already in the group when neighbour j comes up: the anchor plus usable ones before j
    before = counts[:, None] + np.cumsum(neighbour_tokens, axis=1) - neighbour_tokens
    taken = usable & (before < window_tokens - 1)
    groups = np.concatenate([np.arange(n)[:, None], ids], axis=1)
    keep = np.concatenate([np.ones((n, 1), dtype=bool), taken], axis=1)
    anchors = np.random.default_rng(seed).permutation(n)
    return groups[anchors][keep[anchors]].astype(np.int64)  # row by row: anchor, then its neighbours
