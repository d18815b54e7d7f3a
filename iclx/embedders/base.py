"""Text embedders (kind ``embedder``) and the cache of their vectors.

An embedder turns texts into L2-normalized float32 vectors, so that an inner product is a cosine
similarity. Selectors (``selector.embedder``) and document orderings (issue 5) share them:

    from iclx.embedders import build_embedder, embed_cached

    vectors = embed_cached(run, cfg.data.order.embedder, texts, key="data.order.embedder")

``embed_cached`` builds the embedder, fits it on ``texts`` (the hashing embedder learns its IDF
there) and stores the vectors as an artifact keyed by the embedder's config, what it was fitted
on and the texts, so a second run or another job of a sweep reads them back. A caller that embeds
other texts later with the same fitted embedder (a selector embeds queries against its pool) takes
the steps itself: ``build_embedder``, ``embedder.fit(corpus)``, ``cached_vectors(run, embedder,
texts)``, then ``cached_vectors`` (or ``embedder.embed``) again for the other texts.

Embedders that need the run's language model (``lm``) receive it as runtime arguments:
``build_embedder(cfg, model=..., tokenizer=..., model_key=...)``; arguments an embedder does not
take are ignored, so callers may always pass what they have.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from iclx import registry


class Embedder(ABC):
    """Texts -> unit-norm float32 vectors of ``dim`` dimensions, in batches with a progress bar."""

    name = "embedder"
    batch_size = 64
    # config keys that change how fast vectors are computed but not the vectors (left out of cache keys)
    cache_exclude: tuple[str, ...] = ("batch_size", "device")

    def __init__(self) -> None:
        self.config: dict[str, Any] = {"name": self.name}  # set by build_embedder to the config it came from

    @property
    @abstractmethod
    def dim(self) -> int: ...

    def fit(self, corpus: Sequence[str]) -> Embedder:
        """Learn corpus statistics (the hashing embedder's IDF). Most embedders need none."""
        return self

    def fingerprint(self) -> str:
        """What the vectors depend on beyond the config: the fitted corpus, the model's identity."""
        return ""

    @abstractmethod
    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """One batch of raw vectors, shape ``(len(texts), dim)``; ``embed`` normalizes them."""

    def embed(self, texts: Sequence[str], *, desc: str | None = None) -> np.ndarray:
        """All ``texts`` as an ``(n, dim)`` float32 array of unit rows (an all-zero row stays zero)."""
        from iclx.progress import progress

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # batches of similar lengths: a model pads each batch to its longest text
        by_length = np.argsort([len(t) for t in texts], kind="stable")
        with progress(total=len(texts), desc=desc or f"embedding ({self.name})", unit="text", leave=False) as bar:
            for start in range(0, len(texts), self.batch_size):
                rows = by_length[start : start + self.batch_size]
                out[rows] = self.encode_batch([texts[i] for i in rows])
                bar.update(len(rows))
        return normalize(out)

    def cache_config(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.items() if k not in self.cache_exclude}


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows are left at zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def texts_digest(texts: Sequence[str]) -> str:
    """A stable hash of a list of texts (order and boundaries included)."""
    h = hashlib.sha256()
    h.update(str(len(texts)).encode())
    for text in texts:
        h.update(b"\0")
        h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


def build_embedder(cfg: Mapping[str, Any], *, key: str = "selector.embedder", **runtime: Any) -> Embedder:
    """The embedder named by ``cfg`` (``{name: hashing, ...}``); ``runtime`` arguments it does not take
    are dropped, so ``lm``'s model can be offered to every embedder."""
    name = str(dict(registry._plain(cfg) or {}).get("name", ""))
    accepted = set(registry.parameters("embedder", name)) if name in registry.known("embedder") else set()
    embedder = registry.build("embedder", cfg, key=key, **{k: v for k, v in runtime.items() if k in accepted})
    embedder.config = dict(registry._plain(cfg))
    return embedder


def cached_vectors(run: Any, embedder: Embedder, texts: Sequence[str], *, desc: str | None = None) -> np.ndarray:
    """``embedder.embed(texts)``, stored as an ``embeddings`` artifact of ``run`` (none when run is None)."""
    texts = list(texts)
    if run is None:
        return embedder.embed(texts, desc=desc)
    material = {"embedder": embedder.cache_config(), "fingerprint": embedder.fingerprint(),
                "texts": texts_digest(texts), "count": len(texts)}

    def build(folder: Any) -> None:
        np.save(folder / "vectors.npy", embedder.embed(texts, desc=desc))

    folder = run.lineage.folder("embeddings", material, build)
    return np.load(folder / "vectors.npy")


def embed_cached(
    run: Any, embedder_cfg: Mapping[str, Any], texts: Sequence[str], *, key: str = "selector.embedder", **runtime: Any
) -> np.ndarray:
    """Embed ``texts`` with the embedder of ``embedder_cfg`` fitted on them; cached across runs.

    Returns an ``(len(texts), dim)`` float32 array of unit rows. ``key`` is where the config sits
    (for error messages); ``runtime`` goes to embedders that take it (``lm``: model, tokenizer,
    model_key).
    """
    embedder = build_embedder(embedder_cfg, key=key, **runtime)
    embedder.fit(texts)
    return cached_vectors(run, embedder, texts)
