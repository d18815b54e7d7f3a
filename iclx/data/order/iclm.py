"""In-Context Pretraining (Shi et al. 2023): order documents so that similar ones share a window.

Every document is embedded and joined to its ``k`` nearest neighbours (FAISS). Near-duplicates
(cosine above ``near_duplicate``) are dropped first: in one context they teach copying, not
reading. Then a greedy walk approximates the maximum-similarity path through the graph: start at
the unvisited document of smallest degree (the hardest to reach later), step to its most similar
unvisited neighbour, and when every neighbour is taken, restart from the next smallest-degree
document. Packing cuts the path into windows and the sampler shuffles the windows, so each window
is coherent while batches stay diverse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iclx.data.document import Document
from iclx.data.order.base import OrderContext, Ordering
from iclx.data.order.neighbors import NeighbourGraphOrder
from iclx.progress import progress
from iclx.registry import register


@register("data/order", "iclm")
class InContextPretrainingOrder(NeighbourGraphOrder):
    def arrange(self, docs: Sequence[Document], embeddings: np.ndarray | None, ctx: OrderContext) -> Ordering:
        assert embeddings is not None  # guaranteed by the required `embedder`
        sims, ids = self.neighbours(embeddings)
        dropped = near_duplicates(sims, ids, self.near_duplicate)
        path, n_paths = greedy_path(sims, ids, exclude=dropped)
        # each restart may join unrelated documents in one window; a larger k means fewer restarts
        return Ordering(path, stats={"paths": float(n_paths)}, dropped=np.flatnonzero(dropped))


def near_duplicates(sims: np.ndarray, ids: np.ndarray, threshold: float | None) -> np.ndarray:
    """Boolean mask of documents to drop: each has a kept, earlier document above ``threshold``.

    Pairs are settled in order of their later document, so of a group of copies the first one in
    the corpus stays, and a document is dropped only for resembling one that is kept.
    """
    n = len(ids)
    dropped = np.zeros(n, dtype=bool)
    if threshold is None:
        return dropped
    rows, cols = np.nonzero((sims > threshold) & (ids >= 0))
    partner = ids[rows, cols]
    earlier, later = np.minimum(rows, partner), np.maximum(rows, partner)
    for a, b in zip(*_sorted_pairs(earlier, later)):
        if not dropped[a]:
            dropped[b] = True
    return dropped


def greedy_path(sims: np.ndarray, ids: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The ICLM traversal of the kNN graph (``ids[i]`` are i's neighbours, ``sims[i]`` their cosines).

    The graph is made undirected (j is a neighbour of i if either lists the other), degree is
    counted there, and ties between equal degrees go to the lower index. Documents in ``exclude``
    are neither visited nor stepped through. Returns every other document exactly once, and the
    number of paths the walk made (1 + its restarts).
    """
    n = len(ids)
    exclude = np.zeros(n, dtype=bool) if exclude is None else exclude
    indptr, neighbours = _undirected_by_similarity(sims, ids, exclude)
    degree = np.diff(indptr)
    start_order = np.lexsort((np.arange(n), degree))  # smallest degree first, then lowest index
    visited = exclude.copy()
    path = np.empty(n - int(exclude.sum()), dtype=np.int64)
    placed = n_paths = 0
    with progress(total=len(path), desc="iclm traversal", unit="doc", disable=len(path) < 100_000) as bar:
        for start in start_order:
            if visited[start]:
                continue
            node, path_start = start, placed
            n_paths += 1
            while node >= 0:
                visited[node] = True
                path[placed] = node
                placed += 1
                row = neighbours[indptr[node] : indptr[node + 1]]
                free = row[~visited[row]]
                node = free[0] if len(free) else -1  # rows are sorted by decreasing similarity
            bar.update(placed - path_start)
    return path, n_paths


def _undirected_by_similarity(
    sims: np.ndarray, ids: np.ndarray, exclude: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency (indptr, neighbours) of the symmetrized kNN graph without ``exclude``d nodes,
    each row sorted by decreasing similarity (equal similarities in a fixed order)."""
    n, k = ids.shape
    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = ids.reshape(-1)
    weight = sims.reshape(-1)
    valid = dst >= 0
    valid[valid] &= (src[valid] != dst[valid]) & ~exclude[src[valid]] & ~exclude[dst[valid]]
    src, dst, weight = src[valid], dst[valid], weight[valid]
    # every edge i -> j also gets j -> i, unless j lists i itself (it would be there twice)
    one_way = ~_lists(ids, rows=dst, values=src)
    src, dst = np.concatenate([src, dst[one_way]]), np.concatenate([dst, src[one_way]])
    weight = np.concatenate([weight, weight[one_way]])
    # a single integer sort by (row, decreasing similarity): 1 - cosine, in [0, 2], on 31 bits is
    # finer than float32 resolves, and one argsort of 20M int64 keys is ~10x faster than lexsort
    descending = np.round((1.0 - np.clip(weight.astype(np.float64), -1.0, 1.0)) * (2**30 - 1)).astype(np.int64)
    order = np.argsort((src << 32) | descending, kind="stable")  # ties: the same order on every CPU
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst[order]


def _lists(ids: np.ndarray, rows: np.ndarray, values: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """For every e, whether ``ids[rows[e]]`` contains ``values[e]`` (in chunks: each gathers k ids)."""
    out = np.empty(len(rows), dtype=bool)
    for start in range(0, len(rows), chunk):
        stop = start + chunk
        out[start:stop] = (ids[rows[start:stop]] == values[start:stop, None]).any(axis=1)
    return out


def _sorted_pairs(earlier: np.ndarray, later: np.ndarray) -> tuple[list[int], list[int]]:
    order = np.lexsort((earlier, later))
    return earlier[order].tolist(), later[order].tolist()
