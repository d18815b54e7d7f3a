"""The tokenizer interface of the ``tokenizer`` group, saving/loading, and batched encoding.

Every option (``bpe``, ``byte``, ``char``, ``word``, ``pretrained``) is a :class:`Tokenizer`:
built from its config, ``train``-ed on the corpus (a no-op for ``byte``), then saved into an
artifact folder with ``save`` and read back with :func:`load_tokenizer`. All of them reserve an
EOS id (appended after every document when packing) and a BOS id.

The folder always holds ``iclx_tokenizer.json`` (which option, special tokens, option data);
HF-backed options add the standard ``tokenizer.json`` beside it, so other tools can read them.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from iclx.errors import DataError
from iclx.registry import build, get

META_FILE = "iclx_tokenizer.json"
EOS = "<eos>"
BOS = "<bos>"
UNK = "<unk>"


class Tokenizer(ABC):
    name: str  # the registry name, written into META_FILE so load_tokenizer finds the class
    eos_id: int
    bos_id: int
    unk_id: int | None = None  # what text outside the vocabulary becomes; None: every text is representable

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    def train(self, texts: Iterable[str]) -> None:
        """Learn the vocabulary from the corpus; options without one ignore it."""

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(self.encode(t), dtype=np.int64) for t in texts]

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens (EOS, BOS) are left out."""

    def save(self, folder: Path) -> None:
        meta = {"name": self.name, "vocab_size": self.vocab_size, "eos_id": self.eos_id, "bos_id": self.bos_id}
        meta.update(self._state())
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")

    def _state(self) -> dict[str, Any]:
        """What ``load`` needs besides the name (written into META_FILE)."""
        return {}

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> Tokenizer: ...


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """The tokenizer saved in ``folder`` (a tokenizer artifact, or a model bundle's copy)."""
    folder = Path(folder)
    meta_file = folder / META_FILE
    if not meta_file.is_file():
        raise DataError(f"{folder} holds no iclx tokenizer ({META_FILE} is missing)")
    meta = json.loads(meta_file.read_text())
    return get("tokenizer", meta["name"]).load(folder, meta)


def encode_documents(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    *,
    workers: int = 1,
    batch_size: int = 512,
    progress: str | None = None,
) -> Iterator[np.ndarray]:
    """Token ids of each text, in order, encoded in batches on ``workers`` threads.

    The HF tokenizers release the GIL while encoding a batch, so threads use several cores
    without copying the corpus into worker processes; their own internal thread pool is turned
    off (TOKENIZERS_PARALLELISM) so that ``workers`` is the number of cores actually used.
    """
    from collections import deque

    from iclx.progress import progress as progress_bar

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    bar = progress_bar(total=len(texts), desc=progress or "", unit="doc", disable=progress is None)
    workers = max(1, workers)
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for start in range(0, len(texts), batch_size):
            pending.append(pool.submit(tokenizer.encode_batch, texts[start : start + batch_size]))
            # keep a few batches in flight, not the whole corpus: memory stays bounded
            if len(pending) > 2 * workers:
                yield from _done(pending.popleft(), bar)
        while pending:
            yield from _done(pending.popleft(), bar)
    bar.close()


def _done(future: Any, bar: Any) -> list[np.ndarray]:
    encoded = future.result()
    bar.update(len(encoded))
    return encoded


def train_tokenizer(tokenizer_cfg: Any, texts: Iterable[str], folder: Path) -> None:
    """The ``tokenizer`` artifact: the configured tokenizer trained on ``texts``, saved in ``folder``."""
    tokenizer = build("tokenizer", tokenizer_cfg, key="tokenizer")  # config errors before reading the corpus
    tokenizer.train(texts)
    tokenizer.save(folder)
