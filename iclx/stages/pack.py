"""Stage ``pack``: the corpus as memory-mapped token shards, training documents in ``data/order``'s order.

An artifact keyed by the tokenizer's key, the ordering config, the window length and
``pretrain.seed`` (orderings are seeded). The ordering's statistics (``Ordering.stats``) are
logged and returned with the token counts and the unigram baseline (the validation loss of a
model that only knows token frequencies), which pre-training must beat.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from iclx.artifacts import config_key
from iclx.data.corpus import corpus
from iclx.data.order.base import OrderContext
from iclx.data.packing import META_FILE, TokenStream, pack, read_meta, unigram_cross_entropy
from iclx.errors import ConfigError, DataError
from iclx.registry import _plain, build, register
from iclx.stages.tokenize import ensure_tokenizer, tokenizer_key
from iclx.tokenizers.base import encode_documents

log = logging.getLogger("iclx")


def seq_len(cfg: Any) -> int:
    """Tokens a training window feeds the model: pretrain.seq_len, else the model's max_seq_len."""
    configured, model_max = cfg.pretrain.get("seq_len"), cfg.model.get("max_seq_len")
    length = configured if configured is not None else model_max
    if length is None:
        raise ConfigError(f"pretrain.seq_len must be set for model '{cfg.model.get('name')}' (its config has no max_seq_len)")
    if not isinstance(length, int) or length < 1:
        raise ConfigError(f"pretrain.seq_len must be a positive integer, got {length!r}")
    if model_max is not None and length > model_max:
        raise ConfigError(f"pretrain.seq_len={length} is above the model's maximum (model.max_seq_len={model_max})")
    return length


def pack_key(cfg: Any) -> str:
    return config_key(tokenizer_key(cfg), cfg.data.get("order"), {"window_tokens": seq_len(cfg) + 1, "seed": cfg.pretrain.seed})


def ensure_packed(run: Any) -> Path:
    """The folder of the run's packed token stream (built first if missing)."""
    if "packed_dir" not in run.state:
        cfg = run.cfg
        describe = {"tokenizer_key": tokenizer_key(cfg), "order": _plain(cfg.data.get("order")),
                    "window_tokens": seq_len(cfg) + 1, "seed": cfg.pretrain.seed}
        run.state["packed_dir"] = run.store.get_or_build("pack", pack_key(cfg), lambda f: _build(run, f), describe=describe)
    return run.state["packed_dir"]


def _build(run: Any, folder: Path) -> None:
    cfg = run.cfg
    order_cfg = cfg.data.get("order") or {"name": "none"}
    ordering_method = build("data/order", order_cfg, key="data.order")  # config errors before tokenizing
    tokenizer = ensure_tokenizer(run)
    docs = corpus(run)
    window_tokens = seq_len(cfg) + 1
    orderings = []

    def order(token_counts: np.ndarray) -> np.ndarray:
        context = OrderContext(seed=int(cfg.pretrain.seed), token_counts=token_counts, window_tokens=window_tokens, run=run)
        ordering = ordering_method.order(docs.train, context)
        sequence = np.asarray(ordering.sequence)
        # documents an ordering drops (near-duplicates) count as covered
        covered = np.concatenate([sequence, np.asarray(ordering.dropped, dtype=np.int64)])
        if not ordering_method.allows_repeats and not np.array_equal(np.sort(covered), np.arange(len(docs.train))):
            raise DataError(f"data.order '{order_cfg['name']}' did not return a permutation of the {len(docs.train)} documents")
        orderings.append(ordering)
        return sequence

    workers = int(cfg.pretrain.get("tokenize_workers", 1))
    encode = lambda batch, label: encode_documents(tokenizer, [d.text for d in batch], workers=workers, progress=label)  # noqa: E731
    meta = pack(folder, docs.train, docs.val, encode, order,
                vocab_size=tokenizer.vocab_size, eos_id=tokenizer.eos_id, bos_id=tokenizer.bos_id)
    meta["order"] = {"name": order_cfg["name"], "stats": {k: float(v) for k, v in orderings[0].stats.items()}}
    meta["chars"] = {"train": sum(len(d.text) for d in docs.train), "val": sum(len(d.text) for d in docs.val)}
    if "val" in meta["splits"]:
        meta["unigram_val_loss"] = unigram_cross_entropy(
            TokenStream(folder, "train", meta), TokenStream(folder, "val", meta), tokenizer.vocab_size
        )
    (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")


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
    folder = ensure_packed(run)
    metrics = pack_metrics(folder, seq_len(run.cfg))
    log.info(
        "packed: %d train tokens in %d documents (%d windows of %d), %d validation tokens, %s, order=%s",
        metrics["train_tokens"], metrics["train_documents"], metrics["train_windows"], seq_len(run.cfg),
        metrics["val_tokens"], metrics["dtype"], read_meta(folder)["order"]["name"],
    )
    run.log_metrics({f"pack/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
    return metrics
