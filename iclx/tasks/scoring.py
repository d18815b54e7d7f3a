"""Scoring ICL prompts with a causal LM: label log-likelihoods, greedy answers, calibration.

The model is anything callable as ``model(input_ids) -> logits`` of shape ``(batch, time, vocab)``
(iclx's models; a Hugging Face causal LM, whose output carries ``.logits``). Right padding is
exact for a causal model: a position never attends to the padding after it.

Classification scores every label's continuation: ``log p(label tokens | prompt)``, summed over
the label's tokens (``sum``) or divided by their count (``mean``, length-normalized). The prompt
is encoded once per query and reused for every label:

- single-token labels (GINC, most verbalizers of a word tokenizer): one forward pass over the
  prompt gives every label's log-probability at its last position;
- multi-token labels: one forward over the prompt with the model's KV cache (models that take
  a cache: Hugging Face models, also behind iclx's ``hf`` adapter), then all labels' tokens in one
  batch over that cache; a model without a cache (iclx's ``gpt``, ``lstm``) gets batched forwards
  over ``prompt + label`` rows, which recompute the prompt per label.

:func:`score_labels_naive` is the reference: one full forward per (query, label), batch size 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

log = logging.getLogger("iclx")

Normalization = Literal["sum", "mean"]


def model_device(model: Any) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def forward_logits(model: Any, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    out = model(input_ids, **kwargs)
    if isinstance(out, (tuple, list)):  # nanoGPT style: (logits, loss)
        out = out[0]
    return getattr(out, "logits", out)


def cached_model(model: Any) -> tuple[Any, str] | None:
    """A Hugging Face causal LM inside ``model`` (itself, or iclx's ``hf`` adapter's ``.model``)
    and the name of its cache argument (``cache`` in transformers 5, ``past_key_values`` before);
    None for models without a KV cache (iclx's own)."""
    import inspect

    inner = getattr(model, "model", model)
    if not type(inner).__module__.startswith("transformers."):
        return None
    parameters = inspect.signature(inner.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return inner, name
    return None


def right_padded(rows: Sequence[Sequence[int]], device: torch.device, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch, longest)`` ids padded on the right with ``pad_id``, and each row's length."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    ids = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return ids.to(device), lengths.to(device)


def normalize(totals: np.ndarray, label_lengths: Sequence[int], normalization: Normalization) -> np.ndarray:
    """Summed label log-probs as they are (``sum``) or per label token (``mean``)."""
    if normalization == "sum":
        return totals
    return totals / np.asarray(label_lengths, dtype=np.float64)


@torch.no_grad()
def continuation_logprobs(
    model: Any, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], batch_size: int = 16
) -> np.ndarray:
    """``sum_t log p(continuation_t | context, continuation_<t)`` for each (context, continuation)
    row: one forward over ``context + continuation`` per row, in right-padded batches.

    What EPR's demonstration scores and multi-token labels of cache-less models are made of.
    """
    device = model_device(model)
    rows = [list(c) + list(y) for c, y in zip(contexts, continuations)]
    out = np.zeros(len(rows), dtype=np.float64)
    order = np.argsort([len(r) for r in rows], kind="stable")  # similar lengths share a batch
    for start in range(0, len(rows), batch_size):
        members = order[start : start + batch_size]
        ids, _ = right_padded([rows[i][:-1] for i in members], device)
        logprobs = torch.log_softmax(forward_logits(model, ids).float(), dim=-1)
        for row, i in enumerate(members):
            first = len(contexts[i]) - 1  # the position that predicts the continuation's first token
            targets = torch.as_tensor(list(continuations[i]), dtype=torch.long, device=device)
            positions = torch.arange(first, first + len(targets), device=device)
            out[i] = float(logprobs[row, positions, targets].sum())
    return out


@torch.no_grad()
def score_labels(
    model: Any, prompts: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], batch_size: int = 16
) -> np.ndarray:
    """``(queries, labels)`` summed log-probabilities of each label's tokens after each prompt."""
    if all(len(label) == 1 for label in labels):
        return _single_token_labels(model, prompts, [label[0] for label in labels], batch_size)
    cached = cached_model(model)
    if cached is not None:
        return np.stack([_labels_over_cache(*cached, prompt, labels) for prompt in prompts])
    contexts = [p for p in prompts for _ in labels]
    continuations = [label for _ in prompts for label in labels]
    rows = continuation_logprobs(model, contexts, continuations, batch_size=max(batch_size, len(labels)))
    return rows.reshape(len(prompts), len(labels))


def _single_token_labels(model: Any, prompts: Sequence[Sequence[int]], label_ids: list[int], batch_size: int) -> np.ndarray:
    device = model_device(model)
    targets = torch.as_tensor(label_ids, dtype=torch.long, device=device)
    out = np.zeros((len(prompts), len(label_ids)), dtype=np.float64)
    order = np.argsort([len(p) for p in prompts], kind="stable")
    for start in range(0, len(prompts), batch_size):
        members = order[start : start + batch_size]
        ids, lengths = right_padded([prompts[i] for i in members], device)
        logits = forward_logits(model, ids)
        last = logits[torch.arange(len(members), device=device), lengths - 1].float()
        out[members] = torch.log_softmax(last, dim=-1)[:, targets].double().cpu().numpy()
    return out


def _labels_over_cache(model: Any, cache_arg: str, prompt: Sequence[int], labels: Sequence[Sequence[int]]) -> np.ndarray:
    """One query: the prompt once with its KV cache, then every label's tokens in one batch."""
    device = model_device(model)
    out = model(torch.as_tensor([list(prompt)], device=device), use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    scores = np.array([float(first[label[0]]) for label in labels])
    longer = [j for j, label in enumerate(labels) if len(label) > 1]
    if longer:
        cache = getattr(out, cache_arg)
        cache.batch_repeat_interleave(len(longer))  # the prompt's keys and values, once per label
        ids, _ = right_padded([labels[j][:-1] for j in longer], device)
        mask = torch.ones((len(longer), len(prompt) + ids.shape[1]), dtype=torch.long, device=device)
        logits = model(ids, attention_mask=mask, use_cache=True, **{cache_arg: cache}).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, j in enumerate(longer):
            rest = torch.as_tensor(list(labels[j][1:]), dtype=torch.long, device=device)
            scores[j] += float(logprobs[row, torch.arange(len(rest), device=device), rest].sum())
    return scores


@torch.no_grad()
def score_labels_naive(model: Any, prompts: Sequence[Sequence[int]], labels: Sequence[Sequence[int]]) -> np.ndarray:
    """The reference scorer: one full forward over ``prompt + label`` per label, batch size 1."""
    device = model_device(model)
    out = np.zeros((len(prompts), len(labels)), dtype=np.float64)
    for q, prompt in enumerate(prompts):
        for j, label in enumerate(labels):
            ids = torch.as_tensor([list(prompt) + list(label)[:-1]], dtype=torch.long, device=device)
            logprobs = torch.log_softmax(forward_logits(model, ids)[0].float(), dim=-1)
            positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(label), device=device)
            out[q, j] = float(logprobs[positions, torch.as_tensor(list(label), device=device)].sum())
    return out


@torch.no_grad()
def generate_greedy(
    model: Any, prompt: Sequence[int], max_new_tokens: int, stop_ids: Sequence[int] = (), max_len: int | None = None
) -> list[int]:
    """Greedy continuation of ``prompt``, ending before the first stop token (or at the budget)."""
    device = model_device(model)
    ids = list(prompt)
    new: list[int] = []
    for _ in range(max_new_tokens):
        window = ids[-max_len:] if max_len else ids
        logits = forward_logits(model, torch.as_tensor([window], dtype=torch.long, device=device))
        token = int(logits[0, -1].argmax())
        if token in stop_ids:
            break
        new.append(token)
        ids.append(token)
    return new


def calibrate(scores: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """Contextual calibration (Zhao et al. 2021): divide each query's label probabilities by those
    the same prompt gives a content-free input ("N/A"), renormalize; returns log-probabilities.

    ``scores``: ``(queries, labels)`` log-likelihoods; ``content_free``: ``(queries, inputs,
    labels)`` log-likelihoods of the content-free inputs under each query's demonstrations.
    """
    probs = _softmax(scores)
    reference = _softmax(content_free).mean(axis=1)  # p_cf: average over the content-free inputs
    adjusted = probs / np.maximum(reference, 1e-12)
    adjusted /= adjusted.sum(axis=1, keepdims=True)
    return np.log(np.maximum(adjusted, 1e-300))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
