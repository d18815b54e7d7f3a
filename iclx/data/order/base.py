"""The ``data/order`` group: the order in which documents are packed into the token stream.

An ordering sees the documents and their token counts and returns the sequence of document
indices to concatenate (a permutation, unless ``allows_repeats`` or it drops near-duplicates)
plus measured statistics. Packing then cuts the stream into training windows, which the sampler
shuffles, so an ordering decides what shares a context window, not the order of batches.

Packing calls ``order_documents``: it builds the configured ordering, caches it as an artifact
keyed by the corpus, the order config (embedder included), the seed and the window size, and logs
its statistics (see ``stats.py``) as ``order/<name>`` metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iclx.data.document import Document
from iclx.registry import register

log = logging.getLogger("iclx")


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
    # documents left out as near-duplicates of kept ones: sequence + dropped covers the corpus
    dropped: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


class DocumentOrder(ABC):
    """An ordering: ``arrange`` decides the sequence; ``order`` adds embeddings and statistics.

    ``embedder`` (an ``embedder`` config, e.g. ``{name: hashing}``) embeds the documents: the
    similarity-based orderings need it, and for the others it is optional and only measured with,
    so that ``random`` reports the same adjacent-document similarity as ``iclm``.
    """

    allows_repeats = False

    def __init__(self, embedder: dict[str, Any] | None = None):
        self.embedder = embedder

    @abstractmethod
    def arrange(self, docs: Sequence[Document], embeddings: np.ndarray | None, ctx: OrderContext) -> Ordering:
        """The packing order; ``embeddings`` are L2-normalized rows, or None without an embedder."""

    def order(self, docs: Sequence[Document], ctx: OrderContext) -> Ordering:
        from iclx.data.order.neighbors import unit_rows
        from iclx.data.order.stats import window_statistics

        if len(ctx.token_counts) != len(docs):
            raise ValueError(f"{len(docs)} documents but {len(ctx.token_counts)} token counts")
        start = time.perf_counter()
        embeddings = unit_rows(self.embed(docs, ctx)) if self.embedder is not None else None
        embedded = time.perf_counter()
        ordering = self.arrange(docs, embeddings, ctx)
        arranged = time.perf_counter()
        concepts = [d.meta.get("concept") for d in docs]
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
        return ordering

    def embed(self, docs: Sequence[Document], ctx: OrderContext) -> np.ndarray:
        """One embedding row per document, through the shared (cached) embedders."""
        from iclx.embedders import embed_texts

        return embed_texts(self.embedder, [d.text for d in docs], run=ctx.run, key="data.order.embedder")


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


def order_documents(
    run: Any,
    docs: Sequence[Document],
    token_counts: np.ndarray,
    window_tokens: int,
    *,
    corpus_key: str,
    order_cfg: Any = None,
) -> Ordering:
    """The ordering ``order_cfg`` (default ``run.cfg.data.order``) of ``docs``, built once per
    corpus (``corpus_key``: the key of the corpus and tokenizer artifacts), order config, seed and
    window size, then reused from the artifact store; its statistics are logged as ``order/*``."""
    from iclx.artifacts import config_key, write_json_atomic
    from iclx.registry import build

    if order_cfg is None:
        order_cfg = run.cfg.data.get("order") or {"name": "none"}
    token_counts = np.asarray(token_counts, dtype=np.int64)
    ordering_component = build("data/order", order_cfg, key="data.order")
    ctx = OrderContext(seed=run.seed, token_counts=token_counts, window_tokens=window_tokens, run=run)
    counts_digest = hashlib.sha256(token_counts.tobytes()).hexdigest()[:16]
    key = config_key(corpus_key, order_cfg, run.seed, window_tokens, counts_digest)

    def build_ordering(folder: Any) -> None:
        ordering = ordering_component.order(docs, ctx)
        np.save(folder / "sequence.npy", ordering.sequence)
        np.save(folder / "dropped.npy", ordering.dropped)
        write_json_atomic(folder / "stats.json", ordering.stats)

    folder = run.store.get_or_build(
        "ordering",
        key,
        build_ordering,
        describe={"corpus": corpus_key, "order": order_cfg, "seed": run.seed, "window_tokens": window_tokens},
    )
    ordering = Ordering(
        sequence=np.load(folder / "sequence.npy"),
        stats=json.loads((folder / "stats.json").read_text()),
        dropped=np.load(folder / "dropped.npy"),
    )
    run.log_metrics({f"order/{k}": v for k, v in ordering.stats.items()})
    log.info("ordering %s: %s", order_cfg.get("name"), _format_stats(ordering.stats))
    return ordering


def _format_stats(stats: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in stats.items())
