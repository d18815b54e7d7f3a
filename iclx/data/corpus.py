"""The pre-training corpus: sources of the ``data`` group, and the seeded validation split.

A source is a registered :class:`CorpusSource` (``text_files``, ``bundled``, ``hf``, ``ginc``);
``cfg.data`` names it plus its parameters, and holds a few keys that are not the source's:
the ``order`` sub-group (applied when packing) and ``validation`` (``{fraction, seed}``: which
documents are held out).

The split is by whole documents and seeded by ``data.validation.seed``, not by the run's seed,
so a seed sweep trains and validates on the same documents.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from iclx.data.document import Document
from iclx.errors import ConfigError, DataError
from iclx.registry import KINDS, _plain, build

log = logging.getLogger("iclx")

# keys of cfg.data that configure the pipeline around the source, not the source itself
NON_SOURCE_KEYS = tuple(KINDS["data"].subsections)


class CorpusSource(ABC):
    @abstractmethod
    def documents(self) -> Iterator[Document]:
        """The corpus's documents in corpus order (the same order every time)."""

    def fingerprint(self) -> Any:
        """What identifies the content beyond the config (file sizes and times); None if nothing."""
        return None

    def describe(self) -> str:
        return type(self).__name__


@dataclass
class Corpus:
    train: list[Document]
    val: list[Document]


def build_source(data_cfg: Mapping[str, Any]) -> CorpusSource:
    return build("data", data_cfg, key="data", exclude=NON_SOURCE_KEYS)


def validation_settings(data_cfg: Mapping[str, Any]) -> tuple[float, int]:
    section = _plain(data_cfg.get("validation") or {})
    fraction, seed = section.get("fraction", 0.05), section.get("seed", 0)
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ConfigError(f"data.validation.fraction must be in [0, 1), got {fraction!r}")
    if not isinstance(seed, int):
        raise ConfigError(f"data.validation.seed must be an integer, got {seed!r}")
    return float(fraction), seed


def split_documents(docs: list[Document], fraction: float, seed: int) -> tuple[list[Document], list[Document]]:
    """(train, val): a seeded random ``fraction`` of the documents (at least one) is held out."""
    if fraction == 0:
        return docs, []
    if len(docs) < 2:
        raise DataError(
            f"data: the corpus has {len(docs)} document; a validation split needs at least 2 "
            "(or set data.validation.fraction=0)"
        )
    n_val = min(len(docs) - 1, max(1, round(fraction * len(docs))))
    held_out = np.zeros(len(docs), dtype=bool)
    held_out[np.random.default_rng(seed).choice(len(docs), size=n_val, replace=False)] = True
    train = [d for d, v in zip(docs, held_out) if not v]
    val = [d for d, v in zip(docs, held_out) if v]
    return train, val


def load_corpus(data_cfg: Mapping[str, Any]) -> Corpus:
    """Read every document of the configured source and split off the validation documents."""
    from iclx.progress import progress

    source = build_source(data_cfg)
    fraction, seed = validation_settings(data_cfg)
    docs = [
        d for d in progress(source.documents(), desc=f"read {source.describe()}", unit="doc")
        if d.text.strip()
    ]
    if not docs:
        raise DataError(f"data: the corpus is empty: {source.describe()} gave no document with text")
    train, val = split_documents(docs, fraction, seed)
    log.info("corpus: %d documents (%d train, %d validation) from %s", len(docs), len(train), len(val), source.describe())
    return Corpus(train=train, val=val)
