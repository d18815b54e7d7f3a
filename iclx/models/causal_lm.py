"""What every iclx language model offers (``gpt``, ``lstm``, ``hf``), and token sampling.

A :class:`CausalLM` maps token ids (B, T) to next-token logits (B, T, V) with ``forward``; it
knows its ``max_seq_len`` (the longest context it was built for) and ``vocab_size``; it returns
its last hidden states (B, T, d) with ``hidden_states`` and their mean over real tokens with
``mean_hidden_states`` (the ``lm`` embedder); ``generate`` samples continuations. Subclasses
implement ``hidden_states`` and ``forward`` and set ``config`` (the keyword arguments that
rebuild them, without ``vocab_size``), which is what a saved model stores beside its weights.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class CausalLM(nn.Module):
    name: str  # the registry name
    vocab_size: int
    max_seq_len: int
    config: dict[str, Any]

    @abstractmethod
    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """The last layer's hidden states (B, T, d) (after the final norm, where there is one)."""

    @abstractmethod
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, V) for token ids (B, T)."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward): 6 per parameter (Kaplan et al. 2020)."""
        return 6.0 * self.num_parameters()

    @torch.no_grad()
    def mean_hidden_states(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, d): the mean of the hidden states over the tokens where ``attention_mask`` is 1.

        Pad on the right: with causal models, right padding leaves the real tokens' states
        unchanged. Only the first ``max_seq_len`` tokens are read.
        """
        idx = idx[:, : self.max_seq_len]
        hidden = self.hidden_states(idx).float()
        if attention_mask is None:
            return hidden.mean(dim=1)
        mask = attention_mask[:, : self.max_seq_len].to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue ``prompt`` (T,) or (B, T) by up to ``max_new_tokens`` sampled tokens.

        ``temperature`` 0 is greedy. The context is cropped to the last ``max_seq_len`` tokens.
        A row stops growing after ``eos_id``; rows that stopped are padded with ``eos_id``.
        """
        was_training = self.training
        self.eval()
        idx = prompt.unsqueeze(0) if prompt.dim() == 1 else prompt
        idx = idx.to(next(self.parameters()).device)
        finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.max_seq_len :])[:, -1, :].float()
            next_id = sample_next_token(logits, temperature, top_k, top_p, generator)
            if eos_id is not None:
                next_id = torch.where(finished, torch.full_like(next_id, eos_id), next_id)
                finished |= next_id == eos_id
            idx = torch.cat([idx, next_id[:, None]], dim=1)
            if eos_id is not None and bool(finished.all()):
                break
        self.train(was_training)
        return idx[0] if prompt.dim() == 1 else idx


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of ``logits`` (B, V): greedy at temperature 0, else sampled from
    the softmax at ``temperature`` restricted to the ``top_k`` most likely tokens and to the
    smallest set whose probability reaches ``top_p`` (nucleus sampling)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the ones before it already reach top_p (the first one always stays)
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
