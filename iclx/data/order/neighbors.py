"""The k-nearest-neighbour graph of document embeddings, searched with FAISS.

Embeddings are L2-normalized, so inner product is cosine similarity. The ``index:`` section of an
ordering's config is an :class:`~iclx.embedders.index.IndexSpec`, the vocabulary the selectors'
index shares: below ``exact_below`` documents the search is exact (a flat index: N^2 d work,
seconds at 50k); above it the index from the FAISS factory string answers instead. The default
``IVF{nlist},Flat`` (``{nlist}`` becomes about 4 sqrt(N) lists) gives the same neighbours on every
run, unlike HNSW, whose multi-threaded build is not deterministic; ``nprobe`` (IVF) and
``ef_search`` (HNSW) trade recall for time. Every document is also a query, which the IVF search
exploits (``_ivf_all_pairs``).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np

from iclx.data.order.base import DocumentOrder
from iclx.embedders.index import IndexSpec, VectorIndex, batches, trained_index
from iclx.schema import EmbedderConfig, Fields

SEARCH_BATCH = 16384  # queries per FAISS call: one progress-bar step, bounded result memory
# IVF centroids are trained on this many documents per list (FAISS's default is 256): k-means
# costs N_train * nlist * d per iteration, which at 1M documents and 4,000 lists is most of the build.
TRAIN_POINTS_PER_LIST = 64


IndexConfig = Annotated[dict[str, Any], Fields(IndexSpec, "kNN index")]  # an ordering's ``index:`` section


class NeighbourGraphOrder(DocumentOrder):
    """An ordering built on the kNN graph of the document embeddings (``iclm``, ``knn_concat``).

    ``near_duplicate`` is the cosine above which two documents count as copies of each other;
    ``index`` is an :class:`IndexSpec` (the ``index:`` section of the config).
    """

    def __init__(
        self,
        embedder: EmbedderConfig,
        k: int = 10,
        near_duplicate: float | None = 0.9,
        index: IndexConfig | None = None,
    ):
        super().__init__(embedder)
        self.k = k
        self.near_duplicate = near_duplicate
        self.index = IndexSpec.from_config(index, key="data.order.index")

    def neighbours(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return knn_graph(embeddings, self.k, self.index, key="data.order.index")


def build_index(embeddings: np.ndarray, spec: IndexSpec, *, key: str = "index.factory") -> VectorIndex:
    """The documents' index (exact or approximate, per ``spec``), built as the graph builds it."""
    return VectorIndex(embeddings, spec, train_points_per_list=TRAIN_POINTS_PER_LIST, key=key)


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
    empty = trained_index(embeddings, spec, train_points_per_list=TRAIN_POINTS_PER_LIST, key=f"{key}.factory")
    if _is_plain_ivf(empty):
        sims, ids = _ivf_all_pairs(empty, embeddings, k + 1, progress)
    else:
        index = VectorIndex(embeddings, spec, trained=empty)
        sims, ids = index.search(embeddings, k + 1, batch_size=SEARCH_BATCH, progress=progress)
    return _drop_self(sims, ids)


def _is_plain_ivf(index: Any) -> bool:
    """An IVF index that sees the vectors as they are (no PCA or other transform in front)."""
    import faiss

    return isinstance(index, faiss.IndexIVF)


def _ivf_all_pairs(ivf: Any, x: np.ndarray, k: int, progress: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Every row of ``x`` searched among all of ``x`` in an empty trained IVF index.

    One coarse assignment (the ``nprobe`` nearest lists of each vector, an N x nlist x d product)
    serves adding, ordering and probing, where ``add`` and ``search`` would each compute it again;
    and queries go in the order of their nearest list, so consecutive queries scan the same lists
    while those are still in cache (about 2x faster).
    """
    from faiss.contrib.ivf_tools import add_preassigned, search_preassigned

    x = np.ascontiguousarray(x, dtype=np.float32)
    coarse_sims, lists = ivf.quantizer.search(x, ivf.nprobe)
    add_preassigned(ivf, x, np.ascontiguousarray(lists[:, 0]))
    sims = np.empty((len(x), k), dtype=np.float32)
    ids = np.empty((len(x), k), dtype=np.int64)
    for rows in batches(np.argsort(lists[:, 0], kind="stable"), SEARCH_BATCH, progress):
        sims[rows], ids[rows] = search_preassigned(ivf, x[rows], k, lists[rows], coarse_sims[rows])
    return sims, ids


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
