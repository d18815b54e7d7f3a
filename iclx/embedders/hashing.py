"""``hashing``: TF-IDF over hashed word and character n-grams; no model, no vocabulary to store.

Each text becomes counts of its word n-grams and of the character n-grams of its words (padded
with spaces, so prefixes and suffixes count), each feature hashed (CRC-32, stable across runs) into
one of ``dim`` buckets. Counts are damped (1 + log tf) and weighted by the bucket's inverse document
frequency in the corpus the embedder was fitted on; character n-grams let "charming" and "charm"
share weight, word n-grams keep exact phrases. A bucket carries a random sign so that colliding
features cancel in expectation instead of adding up (Weinberger et al. 2009).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from iclx.embedders.base import Embedder, texts_digest
from iclx.registry import register

WORD = re.compile(r"\w+|[^\w\s]")


@register("embedder", "hashing")
class HashingEmbedder(Embedder):
    def __init__(
        self,
        dim: int = 4096,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (3, 5),
        lowercase: bool = True,
        idf: bool = True,
        batch_size: int = 1024,
    ):
        super().__init__()
        self._dim = dim
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.lowercase = lowercase
        self.use_idf = idf
        self.batch_size = batch_size
        self._word_features: dict[str, list[int]] = {}  # memo: a word's char n-gram buckets (words recur)
        self._corpus: list[str] | None = None
        self._idf: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self._dim

    def fit(self, corpus: Sequence[str]) -> HashingEmbedder:
        # IDF is computed on first use, so a run that finds its vectors cached never pays for it
        self._corpus = list(corpus)
        self._idf = None
        return self

    def fingerprint(self) -> str:
        return texts_digest(self._corpus) if self._corpus is not None and self.use_idf else ""

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        idf = self._inverse_document_frequency()
        for row, text in enumerate(texts):
            buckets, counts = self._counts(text)
            if len(buckets):
                signs = np.where(buckets < 0, -1.0, 1.0)
                columns = np.abs(buckets) - 1
                np.add.at(out[row], columns, signs * (1.0 + np.log(counts)) * idf[columns])
        return out

    # --- features ---------------------------------------------------------------------------------

    def _bucket(self, feature: str) -> int:
        """A signed bucket id: +/-(bucket + 1), the sign from a hash bit the bucket does not use."""
        h = zlib.crc32(feature.encode("utf-8", "surrogatepass"))
        bucket = (h & 0x7FFFFFFF) % self.dim
        return bucket + 1 if h & 0x80000000 else -(bucket + 1)

    def _char_buckets(self, word: str) -> list[int]:
        cached = self._word_features.get(word)
        if cached is None:
            padded = f" {word} "
            lo, hi = self.char_ngrams
            cached = [
                self._bucket("c:" + padded[i : i + n])
                for n in range(max(lo, 1), hi + 1)
                for i in range(max(1, len(padded) - n + 1))
            ]
            self._word_features[word] = cached
        return cached

    def _counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Signed bucket ids of ``text``'s features and how often each occurs."""
        words = WORD.findall(text.lower() if self.lowercase else text)
        features: Counter[int] = Counter()
        lo, hi = self.word_ngrams
        for n in range(max(lo, 1), hi + 1):
            for i in range(len(words) - n + 1):
                features[self._bucket("w:" + " ".join(words[i : i + n]))] += 1
        if self.char_ngrams[1] > 0:
            for word in words:
                features.update(self._char_buckets(word))
        if not features:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.fromiter(features.keys(), dtype=np.int64), np.fromiter(features.values(), dtype=np.float64)

    def _inverse_document_frequency(self) -> np.ndarray:
        if self._idf is None:
            self._idf = np.ones(self.dim, dtype=np.float64)
            if self.use_idf and self._corpus:
                df = np.zeros(self.dim, dtype=np.float64)
                for text in self._corpus:
                    df[np.unique(np.abs(self._counts(text)[0]) - 1)] += 1
                n = len(self._corpus)
                self._idf = np.log((1 + n) / (1 + df)) + 1.0  # smoothed, as in scikit-learn
        return self._idf
