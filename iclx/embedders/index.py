"""Nearest neighbours by inner product over unit vectors (= cosine similarity), with FAISS.

The one index wrapper of iclx: selectors (knn, mmr, dpp, epr) search the pool with it and document
orderings (iclm, knn_concat) build their kNN graph with it. An :class:`IndexSpec` says how, in
FAISS's own words:

- ``factory``: a FAISS index factory string. ``Flat`` searches exactly; an approximate index
  trades a little recall for speed: ``IVF1024,Flat`` (k-means lists, ``{nlist}`` becomes about
  4 sqrt(N) of them) or ``HNSW32`` (a proximity graph);
- ``nprobe``: IVF lists visited per query;
- ``ef_search``: HNSW candidates kept per query (at least the k asked for);
- ``exact_below``: below this many vectors, search exactly whatever ``factory`` says.

The orderings' config section ``index:`` is an IndexSpec; a selector's ``index`` and ``nprobe``
keys become ``factory`` and both search breadths (see ``selector_index_spec``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from iclx.errors import ConfigError


@dataclass(frozen=True)
class IndexSpec:
    """How neighbours are searched; the defaults are those of the orderings' ``index:`` section."""

    exact_below: int = 50_000  # vectors; at or above this, use ``factory``
    factory: str = "IVF{nlist},Flat"  # FAISS index_factory string; {nlist} ~ 4 sqrt(N) lists
    nprobe: int = 8  # IVF lists visited per query
    ef_search: int = 64  # HNSW candidate list size per query

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None, key: str) -> IndexSpec:
        from iclx.registry import check_arguments

        return cls(**check_arguments("kNN index", cls, dict(cfg or {}), key=key))

    def is_exact(self, n: int) -> bool:
        return n < self.exact_below

    def factory_for(self, n: int) -> str:
        """The factory string used for ``n`` vectors: ``Flat`` below ``exact_below``, ``{nlist}`` filled in."""
        return "Flat" if self.is_exact(n) else self.factory.replace("{nlist}", str(ivf_lists(n)))


def selector_index_spec(factory: str, nprobe: int) -> IndexSpec:
    """A selector's ``index`` and ``nprobe`` keys: its factory always applies (no exact threshold),
    and its one breadth knob serves IVF's nprobe and HNSW's ef_search alike."""
    return IndexSpec(exact_below=0, factory=factory, nprobe=nprobe, ef_search=nprobe)


def ivf_lists(n: int) -> int:
    """IVF list count for ``n`` vectors: ~4 sqrt(n) (FAISS's guideline), >= 39 training points each."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def trained_index(
    vectors: np.ndarray,
    spec: IndexSpec,
    *,
    seed: int | None = None,
    train_points_per_list: int | None = None,
    key: str = "index",
) -> Any:
    """The empty FAISS index ``spec`` asks for at this size, trained on ``vectors`` if it needs it,
    its search breadth set.

    ``seed`` seeds IVF's k-means (None keeps FAISS's own seed); ``train_points_per_list`` caps the
    k-means sample (None keeps FAISS's 256 per list); ``key`` names the config entry of the factory
    string in error messages.
    """
    import faiss

    n, dim = vectors.shape
    factory = spec.factory_for(n)
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[0].split(": ")[-1] if str(e).strip() else "rejected"
        raise ConfigError(f"{key}: FAISS cannot build '{factory}' ({reason})") from e
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and not index.is_trained:  # k-means lists: at least one training vector each
        if n < ivf.nlist:
            raise ConfigError(f"{key}: '{factory}' has {ivf.nlist} lists but only {n} vectors to train them")
        if seed is not None:
            ivf.cp.seed = seed
        if train_points_per_list is not None:
            ivf.cp.max_points_per_centroid = train_points_per_list
    if not index.is_trained:
        index.train(vectors)
    set_search_breadth(index, spec.nprobe, spec.ef_search)
    return index


def set_search_breadth(index: Any, nprobe: int, ef_search: int) -> None:
    """IVF lists probed (no more than exist: more would probe padding) and HNSW's efSearch."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = min(nprobe, ivf.nlist)
    try:
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", ef_search)
    except RuntimeError:  # no HNSW in this index
        pass


EXACT = IndexSpec(exact_below=0, factory="Flat")


class VectorIndex:
    """``vectors`` in a FAISS index built per ``spec`` (exact by default), searched by inner product."""

    def __init__(self, vectors: np.ndarray, spec: IndexSpec = EXACT, *, trained: Any = None, **build: Any):
        """``build``: ``seed``, ``train_points_per_list``, ``key`` of :func:`trained_index`; or
        ``trained``: the empty index :func:`trained_index` already made for ``vectors`` and ``spec``."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size = len(vectors)
        self.spec = spec
        self.index = trained if trained is not None else trained_index(vectors, spec, **build)
        self.index.add(vectors)

    def set_search_breadth(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Search more widely (recall) or narrowly (speed) from now on."""
        if nprobe is not None:
            self.spec = replace(self.spec, nprobe=nprobe)
        if ef_search is not None:
            self.spec = replace(self.spec, ef_search=ef_search)
        set_search_breadth(self.index, self.spec.nprobe, self.spec.ef_search)

    def search(
        self, queries: np.ndarray, k: int, *, batch_size: int | None = None, progress: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(queries), k)``, best first; index -1 where fewer exist.

        With ``batch_size``, queries go to FAISS in batches of that many (bounded result memory,
        one step of a ``progress`` bar each); without, in one call.
        """
        k = min(k, self.size)
        set_search_breadth(self.index, self.spec.nprobe, max(self.spec.ef_search, k))  # HNSW keeps >= k candidates
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if batch_size is None:
            return self.index.search(queries, k)
        scores = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        for rows in batches(np.arange(len(queries)), batch_size, progress):
            scores[rows], ids[rows] = self.index.search(queries[rows], k)
        return scores, ids


def batches(rows: np.ndarray, size: int, progress: str | None) -> Iterator[np.ndarray]:
    """``rows`` in slices of ``size``, with a progress bar (or lines) when there are several."""
    from iclx.progress import progress as progress_bar

    starts = range(0, len(rows), size)
    bar = progress_bar(starts, desc=progress or "", unit="batch", disable=progress is None or len(starts) <= 1)
    return (rows[start : start + size] for start in bar)
