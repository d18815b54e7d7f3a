"""``gpt``: a decoder-only transformer LM (GPT-2 shape).

Pre-LN blocks (x + attn(ln(x)), x + mlp(ln(x))), causal self-attention through
``scaled_dot_product_attention`` (flash/memory-efficient kernels where available), GELU MLP,
dropout, learned absolute positions or rotary embeddings (``positional: rope``), and the output
head tied to the token embedding. Presets: ``gpt_tiny`` (CPU quickstart), ``gpt_small``,
``gpt2_124m`` (GPT-2 small).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from iclx.errors import ConfigError
from iclx.models.causal_lm import CausalLM
from iclx.registry import register


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021): rotates query/key channel pairs by position."""

    def __init__(self, head_dim: int, max_seq_len: int, base: float):
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.outer(torch.arange(max_seq_len).float(), inv_freq)  # (T, head_dim / 2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, T, head_dim)
        t = x.shape[-2]
        cos, sin = self.cos[:t].to(x.dtype), self.sin[:t].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float, bias: bool, rotary: Rotary | None):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.proj_dropout = nn.Dropout(dropout)
        self.rotary = rotary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.proj_dropout(self.proj(y.transpose(1, 2).contiguous().view(b, t, d)))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float, bias: bool, rotary: Rotary | None):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = CausalSelfAttention(d_model, n_head, dropout, bias, rotary)
        self.ln_2 = nn.LayerNorm(d_model, bias=bias)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_ff, bias=bias), nn.GELU(), nn.Linear(d_ff, d_model, bias=bias), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


@register("model", "gpt")
class GPT(CausalLM):
    def __init__(
        self,
        vocab_size: int,
        max_seq_len: int = 512,
        n_layer: int = 4,
        n_head: int = 4,
        d_model: int = 128,
        d_ff: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        positional: Literal["learned", "rope"] = "learned",
        rope_base: float = 10000.0,
    ):
        """``d_ff``: the MLP's hidden width (null: 4 * d_model)."""
        super().__init__()
        if vocab_size < 1:
            raise ConfigError(f"model.vocab_size must be positive, got {vocab_size}")
        self.check_config(dict(max_seq_len=max_seq_len, n_layer=n_layer, n_head=n_head, d_model=d_model, positional=positional))
        d_ff = d_ff or 4 * d_model
        self.config = dict(max_seq_len=max_seq_len, n_layer=n_layer, n_head=n_head, d_model=d_model, d_ff=d_ff,
                           dropout=dropout, bias=bias, positional=positional, rope_base=rope_base)
        self.vocab_size, self.max_seq_len, self.n_layer, self.d_model = vocab_size, max_seq_len, n_layer, d_model
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(max_seq_len, d_model) if positional == "learned" else None
        rotary = Rotary(d_model // n_head, max_seq_len, rope_base) if positional == "rope" else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_head, d_ff, dropout, bias, rotary) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model, bias=bias)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one matrix embeds and un-embeds
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) so depth does not blow up the stream
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @classmethod
    def check_config(cls, values: dict[str, Any], key: str = "model") -> None:
        """What the types cannot say, checked before any stage runs (by ``iclx.schema``) and here."""
        for name in ("max_seq_len", "n_layer", "n_head", "d_model"):
            if values[name] < 1:
                raise ConfigError(f"{key}.{name} must be positive, got {values[name]}")
        d_model, n_head = values["d_model"], values["n_head"]
        if d_model % n_head:
            raise ConfigError(f"{key}.d_model ({d_model}) must be divisible by {key}.n_head ({n_head})")
        if values["positional"] == "rope" and (d_model // n_head) % 2:
            raise ConfigError(f"{key}.positional=rope needs an even head size, got d_model/n_head = {d_model // n_head}")

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.max_seq_len:
            raise ValueError(f"sequence of {t} tokens is longer than the model's max_seq_len {self.max_seq_len}")
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(t, device=idx.device))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.hidden_states(idx))

    def flops_per_token(self, seq_len: int) -> float:
        """6 per matmul parameter (the tied head counts once, position embeddings are no matmul)
        plus attention scores and values: 12 * n_layer * d_model * seq_len (PaLM, Chowdhery et al. 2022)."""
        matmul_params = self.num_parameters() - (self.wpe.weight.numel() if self.wpe is not None else 0)
        return 6.0 * matmul_params + 12.0 * self.n_layer * self.d_model * seq_len
