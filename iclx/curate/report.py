"""What a curation shows: the per-step table, the funnel plot, and samples to read.

``finalize`` merges the tasks' audits (``work/audit/<step>/<rank>.json``, written by
``iclx.curate.blocks``) into the artifact's ``report.json``, ``dropped/<step>.jsonl`` (a seeded
sample of what each step dropped, per reason), ``near_threshold/<step>.jsonl`` (kept documents that
were closest to being dropped) and ``stats/`` (datatrove's statistics of every pass).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from iclx.artifacts import atomic_open, write_json_atomic

COLUMNS = ["step", "name", "docs_in", "MB_in", "kept", "MB_kept", "dropped", "kept_%", "dropped_by_reason", "seconds"]


def finalize(folder: Path, labels: list[str], names: dict[str, str], seconds: float) -> dict[str, Any]:
    work = folder / "work"
    steps = []
    for label in labels:
        audits = [json.loads(p.read_text()) for p in sorted((work / "audit" / label).glob("*.json"))]
        merged = _merge(label, names.get(label, label), audits)
        steps.append(merged)
        _write_samples(folder / "dropped" / f"{label}.jsonl", merged.pop("samples"))
        _write_jsonl(folder / "near_threshold" / f"{label}.jsonl", merged.pop("near"))
        ledgers = sorted((work / "audit" / label).glob("*.ledger.jsonl"))
        if ledgers:  # every document's decision (curate.ledger=true)
            (folder / "ledger").mkdir(exist_ok=True)
            with open(folder / "ledger" / f"{label}.jsonl", "wb") as out:
                for part in ledgers:
                    out.write(part.read_bytes())
    stats = folder / "stats"
    stats.mkdir(exist_ok=True)
    for stats_file in sorted((work / "logs").glob("*/stats.json")):
        shutil.copy(stats_file, stats / f"{stats_file.parent.name}.json")
    last = steps[-1] if steps else {"kept": 0, "bytes_kept": 0}
    report = {"steps": steps, "documents": last["kept"], "bytes": last["bytes_kept"], "seconds": round(seconds, 2)}
    write_json_atomic(folder / "report.json", report)
    return report


def _merge(label: str, name: str, audits: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"label": label, "name": name, "docs_in": 0, "bytes_in": 0, "kept": 0, "bytes_kept": 0,
                           "dropped": {}, "removed": {}, "errors": [], "seconds": 0.0, "samples": {}, "near": []}
    seen: dict[str, int] = {}
    for a in audits:
        for k in ("docs_in", "bytes_in", "kept", "bytes_kept", "seconds"):
            out[k] += a[k]
        for field in ("dropped", "removed"):
            for reason, (n, size) in a[field].items():
                counts = out[field].setdefault(reason, [0, 0])
                counts[0] += n
                counts[1] += size
        out["errors"] += a["errors"]
        out["near"] += a["near"]
        for reason, sample in a["samples"].items():
            out["samples"].setdefault(reason, []).append((a["seen"].get(reason, len(sample)), sample))
            seen[reason] = seen.get(reason, 0) + a["seen"].get(reason, len(sample))
    n_near = max((len(a["near"]) for a in audits), default=0)
    out["near"] = sorted(out["near"], key=lambda r: r.get("margin", 0))[:n_near]
    out["errors"] = out["errors"][:10]
    out["seconds"] = round(out["seconds"], 3)
    out["dropped"] = dict(sorted(out["dropped"].items(), key=lambda kv: -kv[1][0]))
    return out


def _write_samples(path: Path, samples: dict[str, list[tuple[int, list[dict[str, Any]]]]]) -> None:
    """Per reason, a sample of the tasks' samples, each task weighted by how many it saw."""
    rows = []
    rng = random.Random(0)
    for _reason, parts in sorted(samples.items()):
        size = max(len(p) for _, p in parts)
        pool = [(seen / max(1, len(p)), r) for seen, p in parts for r in p]
        chosen = sorted(pool, key=lambda wr: rng.random() ** (1 / wr[0]) if wr[0] > 0 else 0, reverse=True)[:size]
        rows += [r for _, r in chosen]
    _write_jsonl(path, rows)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_report(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "report.json").read_text())


def table_rows(report: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for s in report["steps"]:
        dropped = sum(n for n, _ in s["dropped"].values())
        reasons = " ".join(f"{r}={n}" for r, (n, _) in s["dropped"].items())
        if s.get("removed"):
            reasons += "".join(f" [{r}: {n} docs trimmed, {size / 1e6:.2f} MB]" for r, (n, size) in s["removed"].items())
        rows.append([s["label"], s["name"], s["docs_in"], round(s["bytes_in"] / 1e6, 3), s["kept"], round(s["bytes_kept"] / 1e6, 3),
                     dropped, round(100 * s["kept"] / max(1, s["docs_in"]), 1), reasons.strip() or "-", s["seconds"]])
    return rows


def funnel_figure(report: dict[str, Any]) -> Any:
    """Documents and megabytes left after each step, with the biggest drop reasons written on the bars."""
    from iclx.plots import pyplot

    plt = pyplot()
    steps = report["steps"]
    labels = ["input"] + [s["label"] for s in steps]
    docs = [steps[0]["docs_in"] if steps else 0] + [s["kept"] for s in steps]
    mb = [steps[0]["bytes_in"] / 1e6 if steps else 0] + [s["bytes_kept"] / 1e6 for s in steps]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(labels) + 1.8))
    for ax, values, unit in ((axes[0], docs, "documents"), (axes[1], mb, "MB")):
        y = list(range(len(labels)))[::-1]
        ax.barh(y, values, color=["#888"] + ["#3a7" for _ in steps])
        ax.set_yticks(y, labels)
        ax.set_xlabel(f"{unit} left")
        for yi, v in zip(y, values):
            ax.text(v, yi, f" {v:,.0f}" if unit == "documents" else f" {v:,.2f}", va="center", fontsize=8)
    for yi, s in zip(list(range(len(labels)))[::-1][1:], steps):
        top = ", ".join(f"{r} {n}" for r, (n, _) in list(s["dropped"].items())[:2])
        if top:
            axes[0].text(0, yi - 0.32, f" -{top}", fontsize=7, color="#a33", va="center")
    axes[0].set_title("curation funnel: documents")
    axes[1].set_title("curation funnel: text")
    fig.tight_layout()
    return fig
