"""Clustered order: spherical k-means over document embeddings, one cluster after another.

The simplest way to make windows coherent: documents of one cluster are packed together, so a
window spans at most a cluster boundary or two. Clusters and the documents inside each come in
seeded random order (similar, not sorted, neighbours), unlike ``iclm``'s nearest-neighbour path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from iclx.data.document import Document
from iclx.data.order.base import DocumentOrder, OrderContext, Ordering
from iclx.registry import register


@register("data/order", "cluster")
class ClusterOrder(DocumentOrder):
    def __init__(self, embedder: dict[str, Any], n_clusters: int = 64, iterations: int = 20):
        super().__init__(embedder)
        self.n_clusters = n_clusters
        self.iterations = iterations

    def arrange(self, docs: Sequence[Document], embeddings: np.ndarray | None, ctx: OrderContext) -> Ordering:
        assert embeddings is not None  # guaranteed by the required `embedder`
        labels = kmeans_labels(embeddings, self.n_clusters, self.iterations, ctx.seed)
        return Ordering(grouped_order(labels, ctx.seed), stats={"clusters": float(len(np.unique(labels)))})


def kmeans_labels(embeddings: np.ndarray, n_clusters: int, iterations: int, seed: int) -> np.ndarray:
    """The nearest k-means centroid (cosine) of each row; at most one cluster per row."""
    import faiss

    n, dim = embeddings.shape
    n_clusters = max(1, min(n_clusters, n))
    kmeans = faiss.Kmeans(
        dim,
        n_clusters,
        niter=iterations,
        seed=seed,
        spherical=True,
        min_points_per_centroid=1,  # small corpora: no warning, k-means is still well defined
        max_points_per_centroid=1 << 30,  # train on every document, not a subsample
    )
    kmeans.train(embeddings)
    _, labels = kmeans.index.search(embeddings, 1)
    return labels[:, 0].astype(np.int64)


def grouped_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices grouped by label: groups in random order, members in random order (seeded)."""
    rng = np.random.default_rng(seed)
    groups = np.unique(labels)
    group_rank = np.empty(int(groups.max()) + 1, dtype=np.int64)
    group_rank[rng.permutation(groups)] = np.arange(len(groups))
    member_rank = rng.permutation(len(labels))
    return np.lexsort((member_rank, group_rank[labels])).astype(np.int64)
