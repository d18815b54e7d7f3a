"""``bm25``: the k pool examples whose inputs best match the query's words under BM25 (via bm25s).

A lexical baseline to the embedding selectors, and EPR's default shortlist. Needs the optional
package ``bm25s`` (``pip install 'iclx[bm25]'``). Tokens are lowercased words of two or more
characters; ``stopwords: en`` drops bm25s's short English list, which includes "not" and "no"
(they matter for sentiment, hence off by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from iclx.errors import ConfigError
from iclx.progress import bars_wanted
from iclx.registry import register
from iclx.selectors.base import Selector, first_k
from iclx.tasks.example import Example

Variant = Literal["robertson", "lucene", "bm25l", "bm25+", "atire"]


def import_bm25s() -> Any:
    try:
        import bm25s
    except ImportError as e:
        raise ConfigError("BM25 needs the optional package bm25s: pip install 'iclx[bm25]'") from e
    return bm25s


class BM25Index:
    """BM25 over a list of texts; ``search`` returns the best-matching indices for other texts."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75, method: Variant = "lucene", stopwords: str | None = None):
        bm25s = import_bm25s()
        from bm25s.tokenization import Tokenizer

        self.size = len(texts)
        self.tokenizer = Tokenizer(stopwords=stopwords)
        corpus = self.tokenizer.tokenize(list(texts), return_as="ids", show_progress=False)
        self.retriever = bm25s.BM25(k1=k1, b=b, method=method)
        self.retriever.index(corpus, show_progress=False)

    def search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(texts), min(k, size))``, best first."""
        queries = self.tokenizer.tokenize(list(texts), update_vocab=False, return_as="ids", show_progress=False)
        # bm25s draws a tqdm bar: on a terminal only (iclx.progress), a log would fill with carriage returns
        indices, scores = self.retriever.retrieve(queries, k=min(k, self.size), show_progress=len(texts) > 1000 and bars_wanted())
        return scores, indices


@register("selector", "bm25")
class BM25Selector(Selector):
    def __init__(self, k1: float = 1.5, b: float = 0.75, method: Variant = "lucene", stopwords: str | None = None):
        self.params = dict(k1=k1, b=b, method=method, stopwords=stopwords)
        import_bm25s()  # a missing optional package fails when the config is built, not mid-run

    def _fit(self) -> None:
        self.index = BM25Index([example.input for example in self.pool], **self.params)

    def _select(self, queries: list[Example], k: int) -> list[list[int]]:
        _, indices = self.index.search([q.input for q in queries], k + 1)
        return [first_k(ranked, k, self.own_index(q)).tolist() for q, ranked in zip(queries, indices)]
