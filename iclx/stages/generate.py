"""Stage ``generate``: print samples of the trained model (``pretrain.samples`` settings).

Prompts are ``pretrain.samples.prompts`` or, when empty, the first ``prompt_tokens`` tokens of
validation documents (``iclx.sampling``).
"""

from __future__ import annotations

import logging
from typing import Any

from iclx.errors import ConfigError
from iclx.registry import register
from iclx.sampling import sample_texts, samples_table, validation_prompts
from iclx.tables import format_table

log = logging.getLogger("iclx")


@register("stage", "generate")
def generate(run: Any) -> dict[str, Any]:
    lm = run.lineage.language_model()
    model, tokenizer = lm.model, lm.tokenizer
    settings = run.cfg.pretrain.samples
    packed = None
    if not run.cfg.pretrain.get("checkpoint"):  # this config's packed data, if built
        try:
            packed = run.lineage.path("pack") if run.lineage.exists("pack") else None
        except ConfigError:  # e.g. model=hf with no context length: nothing of this config was packed
            packed = None
    samples = sample_texts(model, tokenizer, validation_prompts(packed, tokenizer, settings), settings, seed=run.seed)
    run.log_table("generate/samples", ["prompt", "continuation"], [[s["prompt"], s["continuation"]] for s in samples])
    print(format_table(["prompt", "continuation"], samples_table(samples)), flush=True)
    new_tokens = [len(tokenizer.encode(s["continuation"])) for s in samples]
    return {"samples": len(samples), "mean_new_tokens": sum(new_tokens) / max(1, len(new_tokens))}
