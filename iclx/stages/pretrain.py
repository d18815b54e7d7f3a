"""Stage ``pretrain``: the configured LM trained on the packed windows (the ``pretrain`` artifact).

The artifact (``iclx.lineage``; built by ``iclx.pretraining.train``) is keyed by the packed
stream's key, the model and optimizer configs, and what shapes the optimization (window length,
batch size, steps, accumulation, clipping, precision, number of processes, ``pretrain.seed``): a
second run with the same config loads it in seconds, and a selector sweep that fixes
``pretrain.seed`` pre-trains once. A killed run started again continues from its last checkpoint.
This stage reports the results, the samples and the loss curve.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from iclx.pretraining import HISTORY_FILE, RESULTS_FILE, SAMPLES_FILE, train
from iclx.registry import register
from iclx.sampling import samples_table
from iclx.tables import format_table
from iclx.training import is_distributed_worker

log = logging.getLogger("iclx")


@register("stage", "pretrain")
def pretrain(run: Any) -> dict[str, Any]:
    lineage = run.lineage
    if is_distributed_worker():  # rank 0 holds the artifact's lock and finishes the artifact
        train(run, lineage.path("pretrain").with_name(f"{lineage.key('pretrain')}.partial"))
        return {"ddp_worker": 1}
    reused = lineage.exists("pretrain")
    lineage.get("pretrain")
    folder = lineage.path("pretrain")
    results = json.loads((folder / RESULTS_FILE).read_text())
    samples = json.loads((folder / SAMPLES_FILE).read_text())
    run.log_table("pretrain/samples", ["prompt", "continuation"], [[s["prompt"], s["continuation"]] for s in samples])
    log.info("samples of the pre-trained model:\n%s", format_table(["prompt", "continuation"], samples_table(samples)))
    _plot_history(run, folder / HISTORY_FILE, results.get("unigram_val_loss"))
    if not reused:
        run.advance_step(int(results["steps"]))
    log.info("pretrain: %s", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in results.items()))
    return {**results, "reused": int(reused)}


def _plot_history(run: Any, history: Path, unigram: float | None) -> None:
    from iclx.plots import pyplot
    from iclx.training.lm import read_history

    plt = pyplot()

    rows = read_history(history) if history.is_file() else []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for metric, style in (("train/loss", "-"), ("val/loss", "o-")):
        points = sorted((r["step"], r["value"]) for r in rows if r["metric"] == metric)
        if points:
            ax.plot(*zip(*points), style, label=metric, markersize=4)
    if unigram is not None:
        ax.axhline(unigram, color="gray", linestyle="--", label="unigram baseline (val)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(f"pre-training: {run.cfg.model.get('name')} on {run.cfg.data.get('name')}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    run.save_figure(fig, "pretrain_loss")
