"""Samples from a trained language model: prompts from the validation documents, sampled
continuations, and a console table of them (used after pre-training and by the ``generate`` stage).

A prompt is preceded by EOS, the document boundary the model saw in training, so it reads as the
start of a document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from iclx.data.packing import TokenStream, read_meta
from iclx.models.causal_lm import CausalLM
from iclx.registry import _plain
from iclx.tokenizers.base import Tokenizer


def validation_prompts(packed: Path | None, tokenizer: Tokenizer, settings: Mapping[str, Any]) -> list[str]:
    """The configured prompts, else the openings of the first ``n`` validation (or train) documents."""
    settings = _plain(settings)
    if settings.get("prompts"):
        return list(settings["prompts"])
    n = int(settings.get("n", 3))
    if packed is None:
        return [""] * n  # nothing to start from: sample documents from scratch
    split = "val" if "val" in read_meta(packed)["splits"] else "train"
    stream = TokenStream(packed, split)
    offsets = stream.offsets
    starts = offsets[: min(n, len(offsets) - 1)]
    length = int(settings.get("prompt_tokens", 16))
    return [tokenizer.decode(stream.read(int(a), int(min(a + length, offsets[i + 1] - 1))).tolist()) for i, a in enumerate(starts)]


def sample_texts(model: CausalLM, tokenizer: Tokenizer, prompts: Sequence[str], settings: Mapping[str, Any],
                 seed: int = 0) -> list[dict[str, str]]:
    """One sampled continuation per prompt: ``[{"prompt": ..., "continuation": ...}]``."""
    settings = _plain(settings)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    out = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer.eos_id, *tokenizer.encode(prompt)], dtype=torch.long)
        generated = model.generate(
            ids, int(settings.get("max_new_tokens", 64)), temperature=float(settings.get("temperature", 1.0)),
            top_k=settings.get("top_k"), top_p=settings.get("top_p"), eos_id=tokenizer.eos_id, generator=generator,
        )
        out.append({"prompt": prompt, "continuation": tokenizer.decode(generated[len(ids):].tolist())})
    return out


def samples_table(samples: Sequence[Mapping[str, str]], width: int = 100) -> list[list[str]]:
    """Rows for the console: newlines shown as '⏎', long texts cut at ``width`` characters."""
    def one_line(text: str) -> str:
        text = text.replace("\n", "⏎")
        return text if len(text) <= width else text[: width - 1] + "…"

    return [[one_line(s["prompt"]), one_line(s["continuation"])] for s in samples]
