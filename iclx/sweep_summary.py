"""When a multirun ends: one ``summary.csv`` (a row per job) and one comparison plot.

Each job leaves ``summary.json`` (status, final metrics of every stage) and ``.hydra/overrides.yaml``
in its folder; this reads them back, so a job that crashed (no summary, or status failed) still
gets its row and the others keep theirs. What the plot shows is the ``report`` config section:

- ``report.curve``: a metric prefix such as ``evaluate/accuracy_k``; metrics named ``<prefix><x>``
  become one curve per job group (x = the number), mean and spread over seeds. A list of prefixes
  (e.g. one per evaluated task variant) draws each group once per prefix, one line style each;
- ``report.metric``: otherwise, one scalar plotted against the first numeric swept key, or as bars;
- ``report.by``: the override keys that name a group (default: every key whose value differs between jobs, but ``seed``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from iclx.plots import log2_shots_axis, pyplot, save_png
from iclx.tables import format_table, write_csv  # stages still import format_table from here, for now

log = logging.getLogger("iclx")

SEED_KEYS = ("seed",)


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per job folder: number, overrides, status, error, flattened final metrics."""
    from iclx.run import final_metrics

    jobs = []
    folders = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name)):
        overrides_file = folder / ".hydra" / "overrides.yaml"
        overrides = list(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
        summary_file = folder / "summary.json"
        try:
            summary = json.loads(summary_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            summary = {"status": "failed", "error": "no summary.json (the job died before finishing)"}
        status = summary.get("status", "failed")
        if status == "running":  # killed mid-run: it never wrote a final status
            status, summary["error"] = "failed", "the job stopped before finishing"
        jobs.append(
            {
                "job": int(folder.name),
                "overrides": [str(o) for o in overrides],
                "status": status,
                "error": summary.get("error", ""),
                "metrics": final_metrics(summary),
            }
        )
    return jobs


def override_values(overrides: list[str]) -> dict[str, str]:
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def write_summary_csv(jobs: list[dict[str, Any]], path: Path) -> list[str]:
    """summary.csv: job, status, one column per swept key, the metrics, the error. Returns columns."""
    keys = sorted({k for j in jobs for k in override_values(j["overrides"])})
    metric_names = sorted({m for j in jobs for m in j["metrics"]})
    columns = ["job", "status", *keys, *metric_names, "overrides", "error"]
    rows = []
    for j in jobs:
        values = override_values(j["overrides"])
        rows.append(
            [j["job"], j["status"], *(values.get(k, "") for k in keys)]
            + [j["metrics"].get(m, "") for m in metric_names]
            + [" ".join(j["overrides"]), j["error"]]
        )
    write_csv(path, columns, rows)
    return columns


def _as_number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def _groups(jobs: list[dict[str, Any]], by: list[str]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in jobs:
        values = override_values(j["overrides"])
        label = ", ".join(f"{k}={values[k]}" for k in by if k in values) or "all jobs"
        grouped[label].append(j)
    return grouped


def group_keys(jobs: list[dict[str, Any]], report: dict[str, Any]) -> list[str]:
    """``report.by``, or every override key whose value differs between jobs, but the seed."""
    if report.get("by"):
        return list(report["by"])
    values: dict[str, set[str]] = defaultdict(set)
    for j in jobs:
        for key, value in override_values(j["overrides"]).items():
            values[key].add(value)
    return sorted(k for k, v in values.items() if len(v) > 1 and k not in SEED_KEYS)


def curve_prefixes(report: dict[str, Any]) -> list[str]:
    curve = report.get("curve")
    return [] if not curve else [curve] if isinstance(curve, str) else list(curve)


def curve_names(curves: list[str]) -> dict[str, str]:
    """Each prefix by the path parts that tell it from the others: the task variant of
    ``evaluate/<variant>/accuracy_k``."""
    parts = [c.split("/") for c in curves]
    shared = [i for i in range(min(map(len, parts))) if len({p[i] for p in parts}) == 1]
    return {c: "/".join(x for i, x in enumerate(p) if i not in shared) or c for c, p in zip(curves, parts)}


def plot_sweep(jobs: list[dict[str, Any]], report: dict[str, Any], path: Path, title: str) -> Path | None:
    """The sweep's one comparison plot (see module doc); None when no job has the metric."""
    plt = pyplot()
    ok = [j for j in jobs if j["status"] == "ok"]
    by = group_keys(jobs, report)
    curves = curve_prefixes(report)
    metric = report.get("metric") or next(
        (m for j in ok for m, v in sorted(j["metrics"].items()) if isinstance(v, (int, float)) and not m.endswith("seconds")),
        None,
    )
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    if curves:
        names = curve_names(curves)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for number, (label, members) in enumerate(sorted(_groups(ok, by).items())):
            for curve, style in zip(curves, ("-", "--", ":", "-.") * len(curves)):
                pattern = re.compile(re.escape(curve) + r"(\d+(?:\.\d+)?)$")
                points: dict[float, list[float]] = defaultdict(list)
                for j in members:
                    for m, v in j["metrics"].items():
                        match = pattern.match(m)
                        if match and isinstance(v, (int, float)):
                            points[float(match.group(1))].append(float(v))
                if not points:
                    continue
                xs = sorted(points)
                stats = [_mean_std(points[x]) for x in xs]
                ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3,
                            linestyle=style, color=colors[number % len(colors)],
                            label=f"{label} {names[curve]}" if len(curves) > 1 else label)
                drawn = True
        # "evaluate/accuracy_k" -> y "evaluate/accuracy", x "k"
        y_name, _, x_name = curves[0].rstrip("_=@").rpartition("_")
        if len(curves) > 1:
            y_name = y_name.rpartition("/")[2]
        ax.set_xlabel(x_name or "x")
        ax.set_ylabel(y_name or curves[0])
        if drawn:
            log2_shots_axis(ax, [x for line in ax.lines for x in line.get_xdata()])
    elif metric:
        numeric_keys = [k for k in by if all(_as_number(override_values(j["overrides"]).get(k)) is not None for j in ok)]
        x_key = numeric_keys[0] if numeric_keys else None
        line_keys = [k for k in by if k != x_key]
        for label, members in sorted(_groups(ok, line_keys).items()):
            points = defaultdict(list)
            for j in members:
                v = j["metrics"].get(metric)
                if not isinstance(v, (int, float)):
                    continue
                x = _as_number(override_values(j["overrides"]).get(x_key)) if x_key else 0.0
                points[x].append(float(v))
            if not points:
                continue
            xs = sorted(points)
            stats = [_mean_std(points[x]) for x in xs]
            if x_key:
                ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=label)
            else:
                ax.bar(label, stats[0][0], yerr=stats[0][1], capsize=3)
            drawn = True
        ax.set_xlabel(x_key or "")
        ax.set_ylabel(metric)
        if not x_key:
            ax.tick_params(axis="x", labelrotation=30)
    if not drawn:
        plt.close(fig)
        return None
    failed = len(jobs) - len(ok)
    ax.set_title(f"{title} ({len(ok)} ok" + (f", {failed} failed)" if failed else ")"), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def summarize_sweep(sweep_dir: Path, report: dict[str, Any], title: str) -> tuple[Path, Path | None, str]:
    jobs = read_jobs(sweep_dir)
    csv_path = sweep_dir / "summary.csv"
    write_summary_csv(jobs, csv_path)
    plot_path = plot_sweep(jobs, report, sweep_dir / "summary.png", title)
    headline = report.get("metric")
    names = [headline] if headline else []
    curves = tuple(curve_prefixes(report))
    if curves:
        names = sorted({m for j in jobs for m in j["metrics"] if m.startswith(curves)}, key=_natural)
    if not names:
        names = sorted({m for j in jobs for m in j["metrics"] if not m.endswith("seconds")})[:6]
    # The table shows what tells jobs apart; overrides every job shares are listed once below it
    shared = set.intersection(*(set(j["overrides"]) for j in jobs)) if len(jobs) > 1 else set()
    rows = [
        [j["job"], j["status"], " ".join(o for o in j["overrides"] if o not in shared),
         *(j["metrics"].get(m, "") for m in names)]
        for j in jobs
    ]
    table = format_table(["job", "status", "overrides", *names], rows)
    if shared:
        table += "\nevery job: " + " ".join(o for o in jobs[0]["overrides"] if o in shared)
    by = group_keys(jobs, report)
    groups = _groups([j for j in jobs if j["status"] == "ok"], by)
    if any(len(members) > 1 for members in groups.values()):
        table += "\n\nmean +- std over the other swept keys (seeds):\n" + aggregate_table(groups, names)
    return csv_path, plot_path, table


def aggregate_table(groups: dict[str, list[dict[str, Any]]], names: list[str]) -> str:
    rows = []
    for label, members in sorted(groups.items()):
        cells = []
        for m in names:
            values = [float(j["metrics"][m]) for j in members if isinstance(j["metrics"].get(m), (int, float))]
            mean, std = _mean_std(values) if values else (math.nan, math.nan)
            cells.append(f"{mean:.4g} +- {std:.2g}" if values else "")
        rows.append([label, len(members), *cells])
    return format_table(["group", "jobs", *names], rows)


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


@dataclass
class SweepOutcome:
    """What the parent process of a multirun learned: set by the callback, read by the entrypoint."""

    started: bool = False
    summarized: bool = False
    failed_jobs: int = 0
    error: str = ""


outcome = SweepOutcome()


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.sweep_summary``) run once when a multirun ends.

    Hydra turns an exception raised by a callback into a warning and exits 0, so every failure here
    is caught and recorded in ``outcome``; the entrypoint exits non-zero on it with one line. Job
    statuses come from the job folders, so they reach the exit code under any launcher.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global outcome
        outcome = SweepOutcome(started=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        outcome.started = True
        try:
            self._summarize(config)
        except Exception as e:  # noqa: BLE001 -- reported by the entrypoint as the sweep's failure
            outcome.error = f"{type(e).__name__}: {e}"

    @staticmethod
    def _summarize(config: DictConfig) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            raise FileNotFoundError(f"the sweep folder {sweep_dir} does not exist (no job ran)")
        report = OmegaConf.to_container(config.get("report") or {}, resolve=True)
        title = str(config.get("sweep_name") or config.get("name") or sweep_dir.parent.name)
        csv_path, plot_path, table = summarize_sweep(sweep_dir, report, title)  # type: ignore[arg-type]
        print(f"\n{table}\n", flush=True)
        print(f"iclx: sweep summary {csv_path}" + (f", plot {plot_path}" if plot_path else ""), flush=True)
        outcome.failed_jobs = sum(j["status"] != "ok" for j in read_jobs(sweep_dir))
        outcome.summarized = True
