"""Stage ``pack``: the corpus as memory-mapped token shards, training documents in ``data/order``'s order.

The ``pack`` artifact (``iclx.lineage``; built by ``iclx.data.packing.build_packed_stream``) is
keyed by the tokenizer's key, the ordering config, the window length and ``pretrain.seed``
(orderings are seeded). The ordering's statistics (``Ordering.stats``) are logged and returned
with the token counts and the unigram baseline (the validation loss of a model that only knows
token frequencies), which pre-training must beat.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from iclx.data.packing import read_meta
from iclx.pretraining import seq_len
from iclx.registry import register

log = logging.getLogger("iclx")


def pack_metrics(folder: Path, window: int) -> dict[str, Any]:
    meta = read_meta(folder)
    train = meta["splits"]["train"]
    val = meta["splits"].get("val", {"tokens": 0, "documents": 0})
    metrics: dict[str, Any] = {
        "train_tokens": train["tokens"], "train_documents": train["documents"], "train_windows": (train["tokens"] - 1) // window,
        "val_tokens": val["tokens"], "val_documents": val["documents"],
        "chars_per_token": meta["chars"]["train"] / max(1, train["tokens"] - train["documents"]),  # EOS carry no text
        "dtype": meta["dtype"],
    }
    if "unigram_val_loss" in meta:
        metrics["unigram_val_loss"] = meta["unigram_val_loss"]
    metrics.update({f"order/{k}": v for k, v in meta["order"]["stats"].items()})
    return metrics


@register("stage", "pack")
def pack_stage(run: Any) -> dict[str, Any]:
    folder = run.lineage.get("pack")
    metrics = pack_metrics(folder, seq_len(run.cfg))
    log.info(
        "packed: %d train tokens in %d documents (%d windows of %d), %d validation tokens, %s, order=%s",
        metrics["train_tokens"], metrics["train_documents"], metrics["train_windows"], seq_len(run.cfg),
        metrics["val_tokens"], metrics["dtype"], read_meta(folder)["order"]["name"],
    )
    run.log_metrics({f"pack/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
    return metrics
