"""Stage ``generate``: print samples of the trained model (``pretrain.samples`` settings).

Prompts are ``pretrain.samples.prompts`` or, when empty, the first ``prompt_tokens`` tokens of
validation documents. A prompt is preceded by EOS, the document boundary the model saw in
training, so it reads as the start of a document.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from iclx.data.packing import TokenStream, read_meta
from iclx.errors import ConfigError
from iclx.models.causal_lm import CausalLM
from iclx.registry import _plain, register
from iclx.sweep_summary import format_table
from iclx.tokenizers.base import Tokenizer

log = logging.getLogger("iclx")


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


@register("stage", "generate")
def generate(run: Any) -> dict[str, Any]:
    from iclx.stages.pack import pack_key
    from iclx.stages.pretrain import trained_model

    model, tokenizer = trained_model(run)
    settings = run.cfg.pretrain.samples
    packed = run.state.get("packed_dir")
    if packed is None and not run.cfg.pretrain.get("checkpoint"):  # this config's packed data, if built
        try:
            key = pack_key(run.cfg)
        except ConfigError:  # e.g. model=hf with no context length: nothing of this config was packed
            key = None
        packed = run.store.path("pack", key) if key and run.store.exists("pack", key) else None
    samples = sample_texts(model, tokenizer, validation_prompts(packed, tokenizer, settings), settings, seed=run.seed)
    run.log_table("generate/samples", ["prompt", "continuation"], [[s["prompt"], s["continuation"]] for s in samples])
    print(format_table(["prompt", "continuation"], samples_table(samples)), flush=True)
    new_tokens = [len(tokenizer.encode(s["continuation"])) for s in samples]
    return {"samples": len(samples), "mean_new_tokens": sum(new_tokens) / max(1, len(new_tokens))}
