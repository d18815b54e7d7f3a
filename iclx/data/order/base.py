"""The ``data/order`` group: the order in which documents are packed into the token stream.

An ordering sees the documents and their token counts and returns the sequence of document
indices to concatenate (a permutation, unless ``allows_repeats`` or it drops near-duplicates)
plus measured statistics. Packing then cuts the stream into training windows, which the sampler
shuffles, so an ordering decides what shares a context window, not the order of batches.

Every ordering measures what it did (``Ordering.stats``, see ``stats.py``); the ``pack`` stage
stores the ordered stream as an artifact keyed by the corpus, this config (embedder included),
the seed and the window length, and logs the statistics as ``pack/order/<name>``.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iclx.data.document import Document
from iclx.registry import register
from iclx.schema import EmbedderConfig

log = logging.getLogger("iclx")


@dataclass
class OrderContext:
    seed: int
    token_counts: np.ndarray  # tokens of each document, EOS included
    window_tokens: int  # tokens per training window (seq_len + 1: its last token starts the next)
    run: Any = None  # the Run, for artifacts (embeddings) and logging; None in unit tests


@dataclass
class Ordering:
    sequence: np.ndarray  # document indices in packing order
    stats: dict[str, float] = field(default_factory=dict)
    # documents left out as near-duplicates of kept ones: sequence + dropped covers the corpus
    dropped: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


class DocumentOrder(ABC):
    """An ordering: ``arrange`` decides the sequence; ``order`` adds embeddings and statistics.

    ``embedder`` (an ``embedder`` config, e.g. ``{name: hashing}``) embeds the documents: the
    similarity-based orderings need it, and for the others it is optional and only measured with,
    so that ``random`` reports the same adjacent-document similarity as ``iclm``.
    """

    allows_repeats = False

    def __init__(self, embedder: EmbedderConfig | None = None):
        self.embedder = embedder

    @abstractmethod
    def arrange(self, docs: Sequence[Document], embeddings: np.ndarray | None, ctx: OrderContext) -> Ordering:
        """The packing order; ``embeddings`` are L2-normalized rows, or None without an embedder."""

    def order(self, docs: Sequence[Document], ctx: OrderContext) -> Ordering:
        from iclx.data.order.stats import window_statistics
        from iclx.embedders.base import normalize

        if len(ctx.token_counts) != len(docs):
            raise ValueError(f"{len(docs)} documents but {len(ctx.token_counts)} token counts")
        start = time.perf_counter()
        embeddings = normalize(self.embed(docs, ctx)) if self.embedder is not None else None
        embedded = time.perf_counter()
        ordering = self.arrange(docs, embeddings, ctx)
        arranged = time.perf_counter()
        # what a window should share: GINC's concept, or a labelled corpus's label
        concepts = [d.meta.get("concept", d.meta.get("label")) for d in docs]
        ordering.stats.update(
            window_statistics(
                ordering.sequence,
                ctx.token_counts,
                ctx.window_tokens,
                embeddings=embeddings,
                concepts=concepts if any(c is not None for c in concepts) else None,
            )
        )
        ordering.stats.update(
            documents=float(len(docs)),
            near_duplicates_dropped=float(len(ordering.dropped)),
            repeats=float(len(ordering.sequence) - len(np.unique(ordering.sequence))),
            embed_seconds=round(embedded - start, 3),
            order_seconds=round(arranged - embedded, 3),
        )
        log.info("ordering: %s", ", ".join(f"{k} {v:.4g}" for k, v in ordering.stats.items()))
        return ordering

    def embed(self, docs: Sequence[Document], ctx: OrderContext) -> np.ndarray:
        """One embedding row per document, through the shared (cached) embedders."""
        from iclx.embedders import embed_cached

        return embed_cached(ctx.run, self.embedder, [d.text for d in docs], key="data.order.embedder")


@register("data/order", "none")
class CorpusOrder(DocumentOrder):
    """Documents in the order the corpus gives them."""

    def arrange(self, docs: Sequence[Document], embeddings: np.ndarray | None, ctx: OrderContext) -> Ordering:
        return Ordering(np.arange(len(docs), dtype=np.int64))


@register("data/order", "random")
class RandomOrder(DocumentOrder):
    """Documents shuffled with the seed: the standard baseline (windows mix unrelated documents)."""

    def arrange(self, docs: Sequence[Document], embeddings: np.ndarray | None, ctx: OrderContext) -> Ordering:
        rng = np.random.default_rng(ctx.seed)
        return Ordering(rng.permutation(len(docs)).astype(np.int64))
