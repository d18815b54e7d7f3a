"""Packing: documents become one token stream, an EOS after each, no padding, on disk.

A packed folder (the ``pack`` artifact) holds, per split (``train``, ``val``):

- ``<split>-00000.bin``, ...: the token ids, raw ``uint16`` when the vocabulary fits, else ``uint32``,
  memory-mapped when read; a shard holds at most ``shard_tokens`` tokens;
- ``<split>.offsets.npy``: int64 start of every document in the stream, then the total length;
- ``<split>.documents.npy``: the corpus index of every packed document (the ordering applied);

and ``meta.json``: format, dtype, vocab size, EOS/BOS ids, and per split the token and document
counts and the shard files. Training windows are cut from the stream by ``iclx.data.windows``.

The train split is written in the order ``data/order`` gives; the validation split stays in
corpus order. Tokenizing comes first (the ordering needs token counts), into corpus-order shards
that are then rewritten in the new order, so the corpus never has to fit in memory as tokens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iclx.data.document import Document
from iclx.data.order.base import OrderContext
from iclx.errors import DataError
from iclx.registry import build
from iclx.tokenizers.base import encode_documents

FORMAT = 1
META_FILE = "meta.json"
DEFAULT_SHARD_TOKENS = 1 << 28  # 512 MiB of uint16: a few shards even for billions of tokens


def token_dtype(vocab_size: int) -> np.dtype:
    if vocab_size <= 2**16:
        return np.dtype(np.uint16)
    if vocab_size <= 2**32:
        return np.dtype(np.uint32)
    raise DataError(f"tokenizer vocabulary of {vocab_size:,} ids is over 2^32: packed shards store ids as uint32 at most")


class ShardWriter:
    """Appends token arrays to ``<split>-NNNNN.bin`` files of at most ``shard_tokens`` tokens."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype, shard_tokens: int = DEFAULT_SHARD_TOKENS):
        self.folder, self.split, self.dtype, self.shard_tokens = Path(folder), split, dtype, shard_tokens
        self.shards: list[dict[str, Any]] = []
        self._file: Any = None

    def write(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids).astype(self.dtype, copy=False)
        while len(ids):
            if self._file is None or self.shards[-1]["tokens"] == self.shard_tokens:
                self._open_next()
            room = self.shard_tokens - self.shards[-1]["tokens"]
            ids[:room].tofile(self._file)
            self.shards[-1]["tokens"] += len(ids[:room])
            ids = ids[room:]

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        name = f"{self.split}-{len(self.shards):05d}.bin"
        self._file = open(self.folder / name, "wb")
        self.shards.append({"file": name, "tokens": 0})

    def close(self) -> list[dict[str, Any]]:
        if self._file is not None:
            self._file.close()
            self._file = None
        return self.shards


def write_split(
    folder: Path,
    split: str,
    token_arrays: Any,
    eos_id: int,
    dtype: np.dtype,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> dict[str, Any]:
    """Write documents' ids (an iterable of arrays), each followed by EOS. Returns the split's meta."""
    writer = ShardWriter(folder, split, dtype, shard_tokens)
    counts = []
    eos = np.array([eos_id])
    for ids in token_arrays:
        writer.write(np.concatenate([ids, eos]))
        counts.append(len(ids) + 1)
    shards = writer.close()
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
    np.save(folder / f"{split}.offsets.npy", offsets)
    return {"tokens": int(offsets[-1]), "documents": len(counts), "shards": shards}


class TokenStream:
    """One split of a packed folder: its shards read as one array of token ids."""

    def __init__(self, folder: str | Path, split: str, meta: dict[str, Any] | None = None):
        self.folder = Path(folder)
        meta = meta or read_meta(self.folder)
        if split not in meta["splits"]:
            raise DataError(f"{self.folder}: no '{split}' split in the packed data")
        self.split, self.dtype = split, np.dtype(meta["dtype"])
        info = meta["splits"][split]
        self.shards = [
            np.memmap(self.folder / s["file"], dtype=self.dtype, mode="r", shape=(s["tokens"],)) if s["tokens"] else np.zeros(0, self.dtype)
            for s in info["shards"]
        ]
        self.starts = np.concatenate([[0], np.cumsum([len(s) for s in self.shards], dtype=np.int64)])
        self.n_tokens = int(info["tokens"])
        self.n_documents = int(info["documents"])

    def __len__(self) -> int:
        return self.n_tokens

    def read(self, start: int, stop: int) -> np.ndarray:
        """Tokens [start, stop) as a (copied) array; a range may span shards."""
        if not 0 <= start <= stop <= self.n_tokens:
            raise IndexError(f"tokens [{start}, {stop}) outside a stream of {self.n_tokens}")
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        parts = []
        while start < stop:
            shard = self.shards[first]
            local = start - int(self.starts[first])
            take = min(stop - start, len(shard) - local)
            parts.append(shard[local : local + take])
            start += take
            first += 1
        return np.concatenate(parts) if len(parts) != 1 else np.array(parts[0])

    @property
    def offsets(self) -> np.ndarray:
        return np.load(self.folder / f"{self.split}.offsets.npy")

    @property
    def documents(self) -> np.ndarray:
        """Corpus index of each packed document (for the train split: the ordering)."""
        return np.load(self.folder / f"{self.split}.documents.npy")


def read_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise DataError(f"{folder} holds no packed data ({META_FILE} is missing)")
    return json.loads(path.read_text())


def pack(
    folder: Path,
    train: Sequence[Document],
    val: Sequence[Document],
    encode: Callable[[Sequence[Document], str], Any],
    order: Callable[[np.ndarray], np.ndarray],
    *,
    vocab_size: int,
    eos_id: int,
    bos_id: int | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> dict[str, Any]:
    """Tokenize and write both splits into ``folder``; the train split in the order ``order`` gives.

    ``encode(docs, label)`` yields each document's ids; ``order(token_counts)`` returns the
    sequence of train document indices to pack (a permutation, or with repeats).
    """
    dtype = token_dtype(vocab_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    unordered = write_split(folder, "corpus", encode(train, "tokenize train"), eos_id, dtype, shard_tokens)
    counts = np.diff(np.load(folder / "corpus.offsets.npy"))
    sequence = np.asarray(order(counts), dtype=np.int64)
    if len(sequence) and (sequence.min() < 0 or sequence.max() >= len(train)):
        raise DataError(f"the document ordering returned indices outside 0..{len(train) - 1}")
    if np.array_equal(sequence, np.arange(len(train))):
        splits["train"] = _rename_split(folder, "corpus", "train", unordered)
    else:
        source = TokenStream(folder, "corpus", {"dtype": dtype.name, "splits": {"corpus": unordered}})
        offsets = np.load(folder / "corpus.offsets.npy")
        reordered = (source.read(int(offsets[i]), int(offsets[i + 1]))[:-1] for i in sequence)  # EOS is re-added
        splits["train"] = write_split(folder, "train", reordered, eos_id, dtype, shard_tokens)
        for shard in unordered["shards"]:
            os.remove(folder / shard["file"])
        os.remove(folder / "corpus.offsets.npy")
    np.save(folder / "train.documents.npy", sequence)
    if val:
        splits["val"] = write_split(folder, "val", encode(val, "tokenize val"), eos_id, dtype, shard_tokens)
        np.save(folder / "val.documents.npy", np.arange(len(val), dtype=np.int64))
    meta = {
        "format": FORMAT,
        "dtype": dtype.name,
        "vocab_size": int(vocab_size),
        "eos_id": int(eos_id),
        "bos_id": None if bos_id is None else int(bos_id),
        "splits": splits,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def _rename_split(folder: Path, old: str, new: str, info: dict[str, Any]) -> dict[str, Any]:
    shards = []
    for i, shard in enumerate(info["shards"]):
        name = f"{new}-{i:05d}.bin"
        os.replace(folder / shard["file"], folder / name)
        shards.append({"file": name, "tokens": shard["tokens"]})
    os.replace(folder / f"{old}.offsets.npy", folder / f"{new}.offsets.npy")
    return {**info, "shards": shards}


def token_counts(stream: TokenStream, vocab_size: int, max_tokens: int | None = None) -> np.ndarray:
    """How often each id occurs in the first ``max_tokens`` tokens of ``stream`` (read in chunks)."""
    end = len(stream) if max_tokens is None else min(len(stream), max_tokens)
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, end, 1 << 24):
        counts += np.bincount(stream.read(start, min(end, start + (1 << 24))), minlength=vocab_size)
    return counts


def unigram_cross_entropy(train: TokenStream, val: TokenStream, vocab_size: int, max_tokens: int = 100_000_000) -> float:
    """Validation loss (nats/token) of the unigram model of the train split (add-one smoothed):
    the baseline a language model must beat by using context. Counts at most ``max_tokens``."""
    counts = token_counts(train, vocab_size, max_tokens)
    log_probs = np.log((counts + 1) / (counts.sum() + vocab_size))
    val_counts = token_counts(val, vocab_size, max_tokens)
    return float(-(val_counts * log_probs).sum() / max(1, val_counts.sum()))


def build_packed_stream(run: Any, folder: Path) -> None:
    """The ``pack`` artifact: this run's corpus, tokenized, in ``data.order``'s document order.
    What it builds comes from the artifact's material, so it cannot drift from the key."""
    config = run.lineage.material("pack")["config"]
    order_cfg = config["order"] or {"name": "none"}
    ordering_method = build("data/order", order_cfg, key="data.order")  # config errors before tokenizing
    tokenizer = run.lineage.get("tokenizer")
    docs = run.lineage.get("corpus")
    window_tokens = config["window_tokens"]
    orderings = []

    def order(token_counts: np.ndarray) -> np.ndarray:
        context = OrderContext(seed=int(config["seed"]), token_counts=token_counts, window_tokens=window_tokens, run=run)
        ordering = ordering_method.order(docs.train, context)
        sequence = np.asarray(ordering.sequence)
        # documents an ordering drops (near-duplicates) count as covered
        covered = np.concatenate([sequence, np.asarray(ordering.dropped, dtype=np.int64)])
        if not ordering_method.allows_repeats and not np.array_equal(np.sort(covered), np.arange(len(docs.train))):
            raise DataError(f"data.order '{order_cfg['name']}' did not return a permutation of the {len(docs.train)} documents")
        orderings.append(ordering)
        return sequence

    workers = int(run.cfg.pretrain.get("tokenize_workers", 1))  # not in the material: it changes no token
    encode = lambda batch, label: encode_documents(tokenizer, [d.text for d in batch], workers=workers, progress=label)  # noqa: E731
    meta = pack(folder, docs.train, docs.val, encode, order,
                vocab_size=tokenizer.vocab_size, eos_id=tokenizer.eos_id, bos_id=tokenizer.bos_id)
    meta["order"] = {"name": order_cfg["name"], "stats": {k: float(v) for k, v in orderings[0].stats.items()}}
    meta["chars"] = {"train": sum(len(d.text) for d in docs.train), "val": sum(len(d.text) for d in docs.val)}
    if "val" in meta["splits"]:
        meta["unigram_val_loss"] = unigram_cross_entropy(
            TokenStream(folder, "train", meta), TokenStream(folder, "val", meta), tokenizer.vocab_size
        )
    (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
