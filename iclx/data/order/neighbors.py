"""The k-nearest-neighbour graph of document embeddings, searched with FAISS.

Embeddings are L2-normalized, so inner product is cosine similarity. Below ``exact_below``
documents the search is exact (a flat index: N^2 d work, seconds at 50k); above it an approximate
index from a FAISS factory string answers instead. The default ``IVF{nlist},Flat`` (``{nlist}``
becomes about 4 sqrt(N) lists) gives the same neighbours on every run, unlike HNSW, whose
multi-threaded build is not deterministic; ``nprobe`` (IVF) and ``ef_search`` (HNSW) trade recall
for time. Every document is a query here, so IVF queries go in the order of their nearest list:
consecutive queries scan the same lists while they are still in cache (about 2x faster).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from iclx.data.order.base import DocumentOrder
from iclx.errors import ConfigError

SEARCH_BATCH = 16384  # queries per FAISS call: one progress-bar step, bounded result memory
# IVF centroids are trained on this many documents per list (FAISS's default is 256): k-means
# costs N_train * nlist * d per iteration, which at 1M documents and 4,000 lists is most of the build.
TRAIN_POINTS_PER_LIST = 64


@dataclass(frozen=True)
class IndexSpec:
    """How neighbours are searched: the ``index:`` section of an ordering's config."""

    exact_below: int = 50_000  # documents; at or above this, use ``factory``
    factory: str = "IVF{nlist},Flat"  # FAISS index_factory string; {nlist} ~ 4 sqrt(N) lists
    nprobe: int = 8  # IVF lists visited per query
    ef_search: int = 64  # HNSW candidate list size per query

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None, key: str) -> IndexSpec:
        from iclx.registry import check_arguments

        return cls(**check_arguments("kNN index", cls, dict(cfg or {}), key=key))

    def is_exact(self, n: int) -> bool:
        return n < self.exact_below


class NeighbourGraphOrder(DocumentOrder):
    """An ordering built on the kNN graph of the document embeddings (``iclm``, ``knn_concat``).

    ``near_duplicate`` is the cosine above which two documents count as copies of each other;
    ``index`` is an :class:`IndexSpec` (the ``index:`` section of the config).
    """

    def __init__(
        self,
        embedder: dict[str, Any],
        k: int = 10,
        near_duplicate: float | None = 0.9,
        index: dict[str, Any] | None = None,
    ):
        super().__init__(embedder)
        self.k = k
        self.near_duplicate = near_duplicate
        self.index = IndexSpec.from_config(index, key="data.order.index")

    def neighbours(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return knn_graph(embeddings, self.k, self.index, key="data.order.index")


def ivf_lists(n: int) -> int:
    """IVF list count for ``n`` vectors: ~4 sqrt(n) (FAISS's guideline), >= 39 training points each."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def build_index(embeddings: np.ndarray, spec: IndexSpec, *, key: str = "index") -> Any:
    """A FAISS inner-product index holding ``embeddings`` (exact or approximate, per ``spec``)."""
    import faiss

    n, dim = embeddings.shape
    if spec.is_exact(n):
        index = faiss.IndexFlatIP(dim)
    else:
        factory = spec.factory.replace("{nlist}", str(ivf_lists(n)))
        try:
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[0].split(": ")[-1] if str(e).strip() else "rejected"
            raise ConfigError(f"{key}.factory: FAISS cannot build '{factory}' ({reason})") from e
        ivf = _ivf_of(index)
        if ivf is not None:
            ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
            ivf.nprobe = spec.nprobe
        if not index.is_trained:
            index.train(embeddings)
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = spec.ef_search
    index.add(embeddings)
    return index


def search(index: Any, queries: np.ndarray, k: int, *, progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (similarities, ids) of every query row, in batches, with an optional progress bar.

    With an IVF index the queries are visited grouped by their nearest list (see the module doc);
    results come back in the order of ``queries`` all the same.
    """
    from tqdm.auto import tqdm

    n = len(queries)
    sims = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    ivf = _ivf_of(index)
    if ivf is not None and ivf.d == queries.shape[1] and n > SEARCH_BATCH:  # not behind a PCA etc.
        _, nearest_list = ivf.quantizer.search(queries, 1)
        visit = np.argsort(nearest_list[:, 0], kind="stable")
    else:
        visit = np.arange(n)
    starts = range(0, n, SEARCH_BATCH)
    bar = tqdm(starts, desc=progress, unit="batch", disable=progress is None or n <= SEARCH_BATCH)
    for start in bar:
        rows = visit[start : start + SEARCH_BATCH]
        sims[rows], ids[rows] = index.search(queries[rows], k)
    return sims, ids


def knn_graph(
    embeddings: np.ndarray, k: int, spec: IndexSpec, *, progress: str | None = "kNN search", key: str = "index"
) -> tuple[np.ndarray, np.ndarray]:
    """Each document's ``k`` nearest other documents: (similarities, ids), both shape (N, k).

    Rows are sorted by decreasing similarity. A document is never its own neighbour, even when an
    exact duplicate ties with it. Where an approximate index finds fewer than ``k`` neighbours,
    the missing ones have id -1 and similarity -inf.
    """
    n = len(embeddings)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((n, 0), np.float32), np.empty((n, 0), np.int64)
    index = build_index(embeddings, spec, key=key)
    sims, ids = search(index, embeddings, k + 1, progress=progress)
    return _drop_self(sims, ids)


def _drop_self(sims: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id (or, if the search did not return it, the row's last entry)."""
    n, width = ids.shape
    is_self = ids == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    first_self = is_self.argmax(axis=1)  # exactly one removal per row, even with repeated ids
    keep = np.ones_like(is_self)
    keep[np.arange(n), first_self] = False
    sims = sims[keep].reshape(n, width - 1)
    ids = ids[keep].reshape(n, width - 1)
    sims[ids < 0] = -np.inf
    return sims, ids


def _ivf_of(index: Any) -> Any | None:
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:  # not an IVF index
        return None
