"""``lstm``: the recurrent LM baseline (time proportional to tokens, no attention), GPT's interface.

Embedding -> stacked LSTM -> LayerNorm -> output head tied to the embedding. ``max_seq_len`` is
only the context it is trained and sampled with: the recurrence itself has no limit.
"""

from __future__ import annotations

import torch
from torch import nn

from iclx.errors import ConfigError
from iclx.models.causal_lm import CausalLM
from iclx.registry import register


@register("model", "lstm")
class LSTMLM(CausalLM):
    def __init__(self, vocab_size: int, d_model: int = 256, n_layer: int = 2, dropout: float = 0.0, max_seq_len: int = 512):
        super().__init__()
        for key, value in [("d_model", d_model), ("n_layer", n_layer), ("max_seq_len", max_seq_len), ("vocab_size", vocab_size)]:
            if value < 1:
                raise ConfigError(f"model.{key} must be positive, got {value}")
        self.config = dict(d_model=d_model, n_layer=n_layer, dropout=dropout, max_seq_len=max_seq_len)
        self.vocab_size, self.max_seq_len, self.d_model = vocab_size, max_seq_len, d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(d_model, d_model, num_layers=n_layer, dropout=dropout if n_layer > 1 else 0.0, batch_first=True)
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.embedding.weight
        nn.init.normal_(self.embedding.weight, mean=0.0, std=0.02)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.drop(self.embedding(idx)))
        return self.ln_f(self.drop(out))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.hidden_states(idx))
