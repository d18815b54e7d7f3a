"""``lm``: the mean hidden state of an iclx language model over the tokens of each text.

The model and its tokenizer are not in the config: the stage that has them passes them at run
time, ``build_embedder(cfg, model=..., tokenizer=..., model_key=...)``, where ``model_key`` names
the model's weights (its checkpoint artifact key) so that cached vectors are never reused across
models. Any pair that follows the two small protocols below works; iclx's own models provide
``mean_hidden_states``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from iclx.embedders.base import Embedder
from iclx.errors import ConfigError
from iclx.registry import register


@runtime_checkable
class HiddenStateModel(Protocol):
    def mean_hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(batch, dim)`` mean of the last layer's hidden states over positions where the
        ``(batch, time)`` boolean ``attention_mask`` is true; ``input_ids`` is right-padded."""


@runtime_checkable
class TextEncoder(Protocol):
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""


@register("embedder", "lm")
class LMEmbedder(Embedder):
    def __init__(
        self,
        model: HiddenStateModel | None = None,
        tokenizer: TextEncoder | None = None,
        model_key: str = "",
        batch_size: int = 32,
        max_tokens: int = 256,
        pad_id: int = 0,
    ):
        super().__init__()
        if model is None or tokenizer is None:
            raise ConfigError(
                "embedder 'lm' embeds with the run's language model, and none was given: "
                "use it where a model exists (the evaluate stage, after pretrain), or choose hashing or minilm"
            )
        if not isinstance(model, HiddenStateModel):
            raise ConfigError(f"embedder 'lm': model {type(model).__name__} has no mean_hidden_states(input_ids, attention_mask)")
        self.model = model
        self.tokenizer = tokenizer
        self.model_key = model_key
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.pad_id = pad_id
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode_batch(["a"]).shape[1])
        return self._dim

    def fingerprint(self) -> str:
        return self.model_key or f"unkeyed-{id(self.model)}"  # no key: never share a cache entry

    @torch.no_grad()
    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        # the last max_tokens tokens: for a causal LM the end of a text has seen all of it
        sequences = [self.tokenizer.encode(t)[-self.max_tokens :] or [self.pad_id] for t in texts]
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.bool)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = True
        device = next((p.device for p in getattr(self.model, "parameters", lambda: [])()), torch.device("cpu"))
        was_training = getattr(self.model, "training", False)
        if hasattr(self.model, "eval"):
            self.model.eval()
        try:
            hidden = self.model.mean_hidden_states(ids.to(device), mask.to(device))
        finally:
            if was_training:
                self.model.train()
        return hidden.float().cpu().numpy()
