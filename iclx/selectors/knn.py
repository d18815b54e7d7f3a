"""``knn``: KATE (Liu et al. 2021): the k pool examples whose inputs are most similar to the query.

Similarity is the cosine of the embedder's vectors, found with FAISS: exact inner product on the
unit vectors by default (``index: Flat``), an approximate factory string (``IVF1024,Flat``,
``HNSW32``) for large pools.
"""

from __future__ import annotations

from iclx.registry import register
from iclx.selectors.dense import EmbeddingSelector
from iclx.tasks.example import Example


@register("selector", "knn")
class KNNSelector(EmbeddingSelector):
    def _select(self, queries: list[Example], k: int) -> list[list[int]]:
        return [ids[:k].tolist() for ids, _ in self.shortlist(queries, k)]
