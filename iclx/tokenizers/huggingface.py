"""Tokenizers backed by Hugging Face ``tokenizers`` (a ``tokenizer.json``), and ``pretrained``.

``bpe`` and ``word`` train one of these on the corpus; ``pretrained`` loads an existing one from a
``tokenizer.json`` file, a folder holding one, or a Hugging Face hub name (fetched by
``tokenizers``, so it needs the network or the local HF cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iclx.errors import DataError
from iclx.registry import register
from iclx.tokenizers.base import EOS, Tokenizer

HF_FILE = "tokenizer.json"
# special tokens of common pre-trained vocabularies, tried in order when eos/bos are not given
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]")
BOS_CANDIDATES = ("<|startoftext|>", "<s>", "<bos>", "<|begin_of_text|>", "[CLS]")


class HFTokenizer(Tokenizer):
    """A ``tokenizers.Tokenizer`` with EOS/BOS ids; subclasses decide how it is made."""

    _tok: Any = None

    @property
    def hf(self) -> Any:
        """The underlying ``tokenizers.Tokenizer``."""
        if self._tok is None:
            raise RuntimeError(f"tokenizer '{self.name}' is used before it was trained")
        return self._tok

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        # encode_batch_fast skips character offsets, which packing never needs
        return [np.asarray(e.ids, dtype=np.int64) for e in self.hf.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=True)

    @property
    def unk_id(self) -> int | None:  # type: ignore[override]
        token = getattr(self.hf.model, "unk_token", None)  # WordLevel, WordPiece; byte-level BPE has none
        return self.hf.token_to_id(token) if token else None

    def token_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def save(self, folder: Path) -> None:
        super().save(folder)
        self.hf.save(str(Path(folder) / HF_FILE))

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> HFTokenizer:
        from tokenizers import Tokenizer as HFCore

        tok = cls.__new__(cls)  # the trained state is in the files; skip the config constructor
        tok._tok = HFCore.from_file(str(Path(folder) / HF_FILE))
        tok.eos_id, tok.bos_id = int(meta["eos_id"]), int(meta["bos_id"])
        return tok


@register("tokenizer", "pretrained")
class PretrainedTokenizer(HFTokenizer):
    def __init__(self, path: str, eos: str | None = None, bos: str | None = None):
        """``eos``/``bos``: special token strings; by default the usual ones found in the vocabulary.
        Without any EOS the tokenizer gets a new ``<eos>`` token (the model's vocabulary grows by one)."""
        self.path = path
        self._tok = _load_hf_tokenizer(path)
        eos_token = eos or next((t for t in EOS_CANDIDATES if self._tok.token_to_id(t) is not None), None)
        if eos is not None and self._tok.token_to_id(eos) is None:
            raise DataError(f"tokenizer.eos: '{eos}' is not in the vocabulary of {path}")
        if eos_token is None:
            self._tok.add_special_tokens([EOS])
            eos_token = EOS
        self.eos_id = self._tok.token_to_id(eos_token)
        bos_token = bos or next((t for t in BOS_CANDIDATES if self._tok.token_to_id(t) is not None), None)
        if bos is not None and self._tok.token_to_id(bos) is None:
            raise DataError(f"tokenizer.bos: '{bos}' is not in the vocabulary of {path}")
        # GPT-2 style vocabularies have one <|endoftext|> for both roles
        self.bos_id = self._tok.token_to_id(bos_token) if bos_token else self.eos_id


def _load_hf_tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer as HFCore

    p = Path(path).expanduser()
    if p.is_dir():
        p = p / HF_FILE
        if not p.is_file():
            raise DataError(f"tokenizer.path: folder {path} has no {HF_FILE}")
    if p.is_file():
        try:
            return HFCore.from_file(str(p))
        except Exception as e:  # the tokenizers error names neither the file nor the key
            raise DataError(f"tokenizer.path: {p} is not a valid {HF_FILE}: {e}") from e
    try:
        return HFCore.from_pretrained(path)
    except Exception as e:
        raise DataError(
            f"tokenizer.path: '{path}' is not a file or folder, and the Hugging Face hub could not provide it "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from e
