"""What the embedding-based selectors (knn, mmr, dpp) share: pool vectors and shortlists.

The pool's inputs are embedded once (cached as an artifact of the run) and indexed with FAISS;
a query's shortlist is its most similar pool examples by cosine, the query itself left out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from iclx.embedders import build_embedder, cached_vectors
from iclx.embedders.index import VectorIndex, selector_index_spec
from iclx.schema import EmbedderConfig
from iclx.selectors.base import Selector, first_k
from iclx.tasks.example import Example

DEFAULT_EMBEDDER = {"name": "hashing"}


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """For loops of small matrix products (one shortlist per query): BLAS threads add nothing there
    but synchronization, which on a busy machine makes each product 100x slower. Uses threadpoolctl
    (installed with scikit-learn) when present."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class EmbeddingSelector(Selector):
    def __init__(self, embedder: EmbedderConfig | None = None, index: str = "Flat", nprobe: int = 16):
        self.embedder_cfg = dict(embedder or DEFAULT_EMBEDDER)
        self.index_spec = selector_index_spec(index, nprobe)

    def _fit(self) -> None:
        ctx = self.context
        self.embedder = build_embedder(self.embedder_cfg, key="selector.embedder", **ctx.embedder_args)
        texts = [example.input for example in self.pool]
        self.embedder.fit(texts)
        self.pool_vectors = cached_vectors(ctx.run, self.embedder, texts, desc="embedding the pool")
        self.index = VectorIndex(self.pool_vectors, self.index_spec, seed=ctx.seed, key="selector.index")

    def embed_queries(self, queries: list[Example]) -> np.ndarray:
        return cached_vectors(self.context.run, self.embedder, [q.input for q in queries], desc="embedding queries")

    def shortlist(self, queries: list[Example], size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: up to ``size`` pool indices, most similar first, and their cosine similarities."""
        vectors = self.embed_queries(queries)
        scores, indices = self.index.search(vectors, size + 1)  # one more, in case the query is in the pool
        out = []
        for q, query in enumerate(queries):
            own = self.own_index(query)
            keep = (indices[q] != own) & (indices[q] >= 0)
            ids, sims = indices[q][keep][:size], scores[q][keep][:size]
            needed = min(size, len(self.pool) - (own >= 0))
            if len(ids) < needed:  # an approximate index found too few: rank this query exactly
                exact = self.pool_vectors @ vectors[q]
                ids = first_k(np.argsort(-exact, kind="stable"), needed, own)
                sims = exact[ids]
            out.append((ids.astype(np.int64), sims.astype(np.float32)))
        return out
