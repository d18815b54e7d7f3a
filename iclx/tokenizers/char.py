"""``char``: one token per Unicode character seen in the training corpus (plus EOS, BOS, UNK).

Round trip is exact for text made of characters the corpus contains; others become UNK.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iclx.errors import ConfigError
from iclx.registry import register
from iclx.tokenizers.base import BOS, EOS, UNK, Tokenizer

SPECIALS = (EOS, BOS, UNK)


@register("tokenizer", "char")
class CharTokenizer(Tokenizer):
    eos_id, bos_id, unk_id = 0, 1, 2

    def __init__(self, max_chars: int | None = None):
        """``max_chars`` keeps the most frequent characters only (the rest become UNK)."""
        if max_chars is not None and max_chars < 1:
            raise ConfigError(f"tokenizer.max_chars must be positive or null, got {max_chars}")
        self.max_chars = max_chars
        self.chars: list[str] = []
        self._codepoints = np.zeros(0, dtype=np.uint32)  # sorted, for vectorized lookup
        self._ids = np.zeros(0, dtype=np.int64)

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def train(self, texts: Iterable[str]) -> None:
        from collections import Counter

        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        chars = [c for c, _ in counts.most_common(self.max_chars)]
        self._set_chars(sorted(chars))

    def _set_chars(self, chars: list[str]) -> None:
        self.chars = chars
        codepoints = np.array([ord(c) for c in chars], dtype=np.uint32)
        order = np.argsort(codepoints)
        self._codepoints = codepoints[order]
        self._ids = (order + len(SPECIALS)).astype(np.int64)

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0].tolist()

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        out = []
        for text in texts:
            # UTF-32 gives one code point per character; look them all up at once
            codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            ids = np.full(len(codepoints), self.unk_id, dtype=np.int64)
            if len(self._codepoints):
                pos = np.minimum(np.searchsorted(self._codepoints, codepoints), len(self._codepoints) - 1)
                known = self._codepoints[pos] == codepoints
                ids[known] = self._ids[pos[known]]
            out.append(ids)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        n = len(SPECIALS)
        return "".join(self.chars[i - n] for i in map(int, ids) if i >= n)

    def _state(self) -> dict[str, Any]:
        return {"chars": "".join(self.chars), "max_chars": self.max_chars}

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> CharTokenizer:
        tok = cls(max_chars=meta.get("max_chars"))
        tok._set_chars(list(meta["chars"]))
        return tok
