"""The ``data/order`` group: the order in which documents are packed into the token stream.

An ordering sees the documents and their token counts and returns the sequence of document
indices to concatenate (a permutation, unless ``allows_repeats``) plus measured statistics.
Packing then cuts the stream into training windows, which the sampler shuffles, so an ordering
decides what shares a context window, not the order of batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iclx.data.document import Document
from iclx.registry import register


@dataclass
class OrderContext:
    seed: int
    token_counts: np.ndarray  # tokens of each document, EOS included
    window_tokens: int  # tokens per training window (max_seq_len + 1)
    run: Any = None  # the Run, for artifacts (embeddings) and logging; None in unit tests


@dataclass
class Ordering:
    sequence: np.ndarray  # document indices in packing order
    stats: dict[str, float] = field(default_factory=dict)


class DocumentOrder(ABC):
    allows_repeats = False

    @abstractmethod
    def order(self, docs: Sequence[Document], ctx: OrderContext) -> Ordering: ...


@register("data/order", "none")
class CorpusOrder(DocumentOrder):
    """Documents in the order the corpus gives them."""

    def order(self, docs: Sequence[Document], ctx: OrderContext) -> Ordering:
        return Ordering(np.arange(len(docs), dtype=np.int64))


@register("data/order", "random")
class RandomOrder(DocumentOrder):
    """Documents shuffled with the seed: the standard baseline (windows mix unrelated documents)."""

    def order(self, docs: Sequence[Document], ctx: OrderContext) -> Ordering:
        rng = np.random.default_rng(ctx.seed)
        return Ordering(rng.permutation(len(docs)).astype(np.int64))
