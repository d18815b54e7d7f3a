"""Stage ``tokenize``: the tokenizer of this config, trained on the corpus's training split.

The ``tokenizer`` artifact (``iclx.lineage``) is keyed by the corpus (data config minus the
ordering, plus the files' identity) and the tokenizer config: a second run, or another job of a
sweep, loads it instead of training. Later stages ask the lineage for it, so ``stages=[pretrain]``
alone works too.
"""

from __future__ import annotations

import logging
from typing import Any

from iclx.registry import register

log = logging.getLogger("iclx")


@register("stage", "tokenize")
def tokenize(run: Any) -> dict[str, Any]:
    tokenizer = run.lineage.get("tokenizer")
    metrics = {"vocab_size": tokenizer.vocab_size, "eos_id": tokenizer.eos_id, "bos_id": tokenizer.bos_id}
    log.info("tokenizer %s: %d ids (EOS %d, BOS %d)", tokenizer.name, tokenizer.vocab_size, tokenizer.eos_id, tokenizer.bos_id)
    run.log_metrics({"tokenize/vocab_size": tokenizer.vocab_size})
    return metrics
