"""Stage ``tokenize``: the tokenizer of this config, trained on the corpus's training split.

An artifact keyed by the corpus (data config, minus the ordering, plus the files' identity) and
the tokenizer config: a second run, or another job of a sweep, loads it instead of training.
Later stages call :func:`ensure_tokenizer`, so ``stages=[pretrain]`` alone works too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from iclx.artifacts import config_key
from iclx.data.corpus import corpus, corpus_key
from iclx.registry import _plain, build, register
from iclx.tokenizers.base import Tokenizer, load_tokenizer

log = logging.getLogger("iclx")


def tokenizer_key(cfg: Any) -> str:
    return config_key(corpus_key(cfg.data), cfg.tokenizer)


def ensure_tokenizer(run: Any) -> Tokenizer:
    """The run's tokenizer, from its artifact (trained there first if missing)."""
    if "tokenizer" not in run.state:
        cfg = run.cfg

        def train(folder: Path) -> None:
            tokenizer = build("tokenizer", cfg.tokenizer, key="tokenizer")  # config errors before reading
            tokenizer.train(doc.text for doc in corpus(run).train)
            tokenizer.save(folder)

        describe = {"data": {k: v for k, v in _plain(cfg.data).items() if k != "order"}, "tokenizer": _plain(cfg.tokenizer)}
        folder = run.store.get_or_build("tokenizer", tokenizer_key(cfg), train, describe=describe)
        run.state["tokenizer"] = load_tokenizer(folder)
    return run.state["tokenizer"]


@register("stage", "tokenize")
def tokenize(run: Any) -> dict[str, Any]:
    tokenizer = ensure_tokenizer(run)
    metrics = {"vocab_size": tokenizer.vocab_size, "eos_id": tokenizer.eos_id, "bos_id": tokenizer.bos_id}
    log.info("tokenizer %s: %d ids (EOS %d, BOS %d)", tokenizer.name, tokenizer.vocab_size, tokenizer.eos_id, tokenizer.bos_id)
    run.log_metrics({"tokenize/vocab_size": tokenizer.vocab_size})
    return metrics
