"""``byte``: UTF-8 bytes are the tokens (ids 0-255), then EOS and BOS. No training, exact round trip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iclx.registry import register
from iclx.tokenizers.base import Tokenizer


@register("tokenizer", "byte")
class ByteTokenizer(Tokenizer):
    eos_id = 256
    bos_id = 257

    @property
    def vocab_size(self) -> int:
        return 258

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        # a sampled sequence can cut a multi-byte character: show U+FFFD rather than fail
        return bytes(int(i) for i in ids if int(i) < 256).decode("utf-8", errors="replace")

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> ByteTokenizer:
        return cls()
