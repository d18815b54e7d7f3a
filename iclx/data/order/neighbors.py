"""The k-nearest-neighbour graph of document embeddings, searched with FAISS.

Embeddings are L2-normalized, so inner product is cosine similarity. Below ``exact_below``
documents the search is exact (a flat index: N^2 d work, seconds at 50k); above it an approximate
index from a FAISS factory string answers instead. The default ``IVF{nlist},Flat`` (``{nlist}``
becomes about 4 sqrt(N) lists) gives the same neighbours on every run, unlike HNSW, whose
multi-threaded build is not deterministic; ``nprobe`` (IVF) and ``ef_search`` (HNSW) trade recall
for time. Every document is also a query, which the IVF search exploits (``_ivf_all_pairs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np

from iclx.data.order.base import DocumentOrder
from iclx.errors import ConfigError
from iclx.schema import EmbedderConfig, Fields

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


def ivf_lists(n: int) -> int:
    """IVF list count for ``n`` vectors: ~4 sqrt(n) (FAISS's guideline), >= 39 training points each."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def build_index(embeddings: np.ndarray, spec: IndexSpec, *, key: str = "index") -> Any:
    """A FAISS inner-product index holding ``embeddings`` (exact or approximate, per ``spec``)."""
    index = _trained_index(embeddings, spec, key)
    index.add(embeddings)
    return index


def search(index: Any, queries: np.ndarray, k: int, *, progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (similarities, ids) of every query row, in batches, with an optional progress bar."""
    sims = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for rows in _batches(np.arange(len(queries)), progress):
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
    index = _trained_index(embeddings, spec, key)
    if _is_plain_ivf(index):
        sims, ids = _ivf_all_pairs(index, embeddings, k + 1, progress)
    else:
        index.add(embeddings)
        sims, ids = search(index, embeddings, k + 1, progress=progress)
    return _drop_self(sims, ids)


def _trained_index(embeddings: np.ndarray, spec: IndexSpec, key: str) -> Any:
    """The empty index ``spec`` asks for at this size, trained on ``embeddings`` if it needs it."""
    import faiss

    n, dim = embeddings.shape
    if spec.is_exact(n):
        return faiss.IndexFlatIP(dim)
    factory = spec.factory.replace("{nlist}", str(ivf_lists(n)))
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[0].split(": ")[-1] if str(e).strip() else "rejected"
        raise ConfigError(f"{key}.factory: FAISS cannot build '{factory}' ({reason})") from e
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        ivf.nprobe = min(spec.nprobe, ivf.nlist)  # more lists than exist would probe padding (-1)
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = spec.ef_search
    if not index.is_trained:
        index.train(embeddings)
    return index


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
    for rows in _batches(np.argsort(lists[:, 0], kind="stable"), progress):
        sims[rows], ids[rows] = search_preassigned(ivf, x[rows], k, lists[rows], coarse_sims[rows])
    return sims, ids


def _batches(rows: np.ndarray, progress: str | None) -> Any:
    """``rows`` in slices of SEARCH_BATCH, with a progress bar when there are several."""
    from tqdm.auto import tqdm

    starts = range(0, len(rows), SEARCH_BATCH)
    bar = tqdm(starts, desc=progress, unit="batch", disable=progress is None or len(starts) <= 1)
    return (rows[start : start + SEARCH_BATCH] for start in bar)


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
