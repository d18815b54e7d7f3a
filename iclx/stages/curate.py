"""Stage ``curate``: the curated corpus of this config, and what the curation did to the data.

The ``curate`` artifact (``iclx.lineage``, built by ``iclx.curate.pipeline``) is what ``tokenize``
and ``pack`` read when ``curate`` names a pipeline; they build it themselves if this stage does not
run first. This stage shows it: the per-step table (``curate_steps.csv``: documents and bytes in,
kept, dropped by reason), the funnel plot (``plots/curate_funnel.png``), and copies of the
samples to read, ``dropped/<step>.jsonl`` and ``near_threshold/<step>.jsonl``, with datatrove's
statistics of every pass (``datatrove_stats/``).
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from iclx.registry import register

log = logging.getLogger("iclx")


@register("stage", "curate")
def curate(run: Any) -> dict[str, Any]:
    from iclx.curate.pipeline import curating
    from iclx.curate.report import COLUMNS, funnel_figure, load_report, table_rows
    from iclx.tables import format_table

    if not curating(run.cfg):
        log.info("curate=none: nothing to curate (tokenize reads data '%s' as it is)", (run.cfg.get("data") or {}).get("name"))
        return {}
    folder = run.lineage.get("curate")
    report = load_report(folder)
    rows = table_rows(report)
    run.log_table("curate_steps", COLUMNS, rows)
    log.info("curation (%s):\n%s", folder, format_table(COLUMNS, rows))
    run.save_figure(funnel_figure(report), "curate_funnel")
    for name, target in (("dropped", "dropped"), ("near_threshold", "near_threshold"), ("stats", "datatrove_stats")):
        if (folder / name).is_dir():
            shutil.copytree(folder / name, run.out_dir / target, dirs_exist_ok=True)
    steps = report["steps"]
    first = steps[0]
    metrics: dict[str, Any] = {
        "documents_in": first["docs_in"], "documents_out": report["documents"],
        "mb_in": round(first["bytes_in"] / 1e6, 4), "mb_out": round(report["bytes"] / 1e6, 4),
        "build_seconds": report["seconds"],
    }
    for s in steps[1:]:
        metrics[f"dropped/{s['label']}"] = sum(n for n, _ in s["dropped"].values())
    run.log_metrics({f"curate/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
    return metrics
