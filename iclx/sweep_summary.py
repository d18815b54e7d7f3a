"""When a multirun ends: one ``summary.csv`` (a row per job) and one comparison plot.

Each job leaves ``summary.json`` (status, final metrics of every stage) and ``.hydra/overrides.yaml``
in its folder; this reads them back, so a job that crashed (no summary, or status failed) still
gets its row and the others keep theirs. What the plot shows is the ``report`` config section:

- ``report.curve``: a metric prefix such as ``evaluate/accuracy_k``; metrics named ``<prefix><x>``
  become one curve per job group (x = the number), mean and spread over seeds. A list of prefixes
  (e.g. one per evaluated task variant) draws each group once per prefix, one line style each;
- ``report.metric``: otherwise, one scalar plotted against the first numeric swept key, or as bars;
- ``report.by``: the override keys that name a group (default: every key whose value differs between jobs, but ``seed``).

``iclx report`` (``iclx/commands/report.py``) rebuilds the same files from finished job folders,
from one sweep folder or merged from several. Each job's ``provenance`` (from its summary.json,
when it recorded one) becomes ``provenance/<fact>`` columns and a line under the table.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from iclx import provenance
from iclx.errors import ConfigError, did_you_mean
from iclx.optuna_study import is_optuna_sweep, summarize_study
from iclx.plots import log2_shots_axis, pyplot, save_png
from iclx.tables import format_table, write_csv

log = logging.getLogger("iclx")

SEED_KEYS = ("seed",)


def read_jobs(sweep_dir: Path, label: str | None = None) -> list[dict[str, Any]]:
    """One record per job folder: id, overrides, status, error, flattened final metrics, provenance.

    The id is the job number, or ``<label>/<number>`` when ``label`` is given: job numbers restart
    at 0 in every sweep folder, so rows merged from several folders need the folder in their id.
    """
    from iclx.run import final_metrics

    jobs = []
    for folder in job_folders(sweep_dir):
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
                "job": int(folder.name) if label is None else f"{label}/{folder.name}",
                "overrides": [str(o) for o in overrides],
                "status": status,
                "error": summary.get("error", ""),
                "metrics": final_metrics(summary),
                "provenance": summary.get("provenance") or {},  # absent in summaries of older runs
            }
        )
    return jobs


def job_folders(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (``0/``, ``1/``, ...), in job order."""
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def override_values(overrides: list[str]) -> dict[str, str]:
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def write_summary_csv(jobs: list[dict[str, Any]], path: Path) -> list[str]:
    """summary.csv: job, status, one column per swept key, the metrics, ``provenance/<fact>`` (when
    the jobs recorded it), the overrides, the error. Returns the columns."""
    keys = sorted({k for j in jobs for k in override_values(j["overrides"])})
    metric_names = sorted({m for j in jobs for m in j["metrics"]})
    facts = list(dict.fromkeys(f for j in jobs for f in j.get("provenance", {})))
    columns = ["job", "status", *keys, *metric_names, *(f"provenance/{f}" for f in facts), "overrides", "error"]
    rows = []
    for j in jobs:
        values = override_values(j["overrides"])
        rows.append(
            [j["job"], j["status"], *(values.get(k, "") for k in keys)]
            + [j["metrics"].get(m, "") for m in metric_names]
            + [j.get("provenance", {}).get(fact, "") for fact in facts]
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


def curve_pattern(prefix: str) -> re.Pattern[str]:
    """Metric names of a curve: the prefix, then the x value (``evaluate/accuracy_k`` + ``8``)."""
    return re.compile(re.escape(prefix) + r"(\d+(?:\.\d+)?)$")


def check_report(jobs: list[dict[str, Any]], report: dict[str, Any], key_prefix: str = "report.") -> None:
    """A ConfigError naming the first ``report`` key that no job answers: a metric no job produced,
    a curve prefix no metric continues, a ``by`` key no job overrides (``key_prefix`` + key names it)."""
    produced = sorted({m for j in jobs for m in j["metrics"]}, key=_natural)
    metric = report.get("metric")
    if metric and metric not in produced:
        raise ConfigError(f"{key_prefix}metric '{metric}': no job produced it{did_you_mean(metric, produced)}. "
                          + _listing("metrics", produced))
    for prefix in curve_prefixes(report):
        pattern = curve_pattern(prefix)
        if not any(pattern.match(m) for m in produced):
            raise ConfigError(f"{key_prefix}curve '{prefix}': no job produced a metric '{prefix}<number>'. "
                              + _listing("metrics", produced))
    swept = sorted({k for j in jobs for k in override_values(j["overrides"])})
    for key in report.get("by") or []:
        if key not in swept:
            raise ConfigError(f"{key_prefix}by '{key}': no job overrides it{did_you_mean(key, swept)}. "
                              + _listing("overridden keys", swept))


def _listing(what: str, names: list[str], most: int = 12) -> str:
    if not names:
        return f"No {what} (did any job finish?)"
    shown = ", ".join(names[:most]) + (f", ... ({len(names) - most} more)" if len(names) > most else "")
    return f"The jobs' {what}: {shown}"


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
                pattern = curve_pattern(curve)
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
    """summary.csv and summary.png of one sweep folder, in it; returns their paths and the table."""
    return summarize_jobs(read_jobs(sweep_dir), report, sweep_dir, title)


def summarize_jobs(
    jobs: list[dict[str, Any]], report: dict[str, Any], out_dir: Path, title: str
) -> tuple[Path, Path | None, str]:
    """summary.csv and summary.png of ``jobs`` (from one sweep folder or several) in ``out_dir``."""
    csv_path = out_dir / "summary.csv"
    write_summary_csv(jobs, csv_path)
    plot_path = plot_sweep(jobs, report, out_dir / "summary.png", title)
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
    if any(j.get("provenance") for j in jobs):
        table += "\n\n" + provenance_lines(jobs)
    return csv_path, plot_path, table


def provenance_lines(jobs: list[dict[str, Any]]) -> str:
    """Where the jobs ran: one line when they all agree, else one line per distinct provenance."""
    by_line: dict[str, list[str]] = defaultdict(list)
    for j in jobs:
        by_line[provenance.describe(j["provenance"]) if j.get("provenance") else "not recorded"].append(str(j["job"]))
    if len(by_line) == 1:
        return f"provenance: {next(iter(by_line))}"
    return "\n".join(f"provenance of jobs {', '.join(ids)}: {line}" for line, ids in by_line.items())


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


def check_sweep_params(config: DictConfig) -> None:
    """Before any job: every key a sweeper searches (``hydra.sweeper.params``) is a config group or a
    key of the config (``+key`` adds one), so a typo fails once instead of in every job."""
    params = config.hydra.get("sweeper", {}).get("params") or {}
    groups = set(config.hydra.runtime.choices)
    for raw_key in params:
        key = str(raw_key).lstrip("~")
        if key.startswith("+") or key in groups or OmegaConf.select(config, key, default=_ABSENT) is not _ABSENT:
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(config, parent) if parent else config
        siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
        raise ConfigError(f"hydra.sweeper.params: '{key}' is not a key of the config{did_you_mean(leaf, siblings)}")


_ABSENT = object()


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.sweep_summary``) run once when a multirun ends.

    Hydra turns an exception raised by a callback into a warning and exits 0, so every failure here
    is caught and recorded in ``outcome``; the entrypoint exits non-zero on it with one line. Job
    statuses come from the job folders, so they reach the exit code under any launcher.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global outcome
        outcome = SweepOutcome(started=True)
        try:
            check_sweep_params(config)
        except ConfigError as e:  # Hydra turns an Exception here into a warning: SystemExit stops the sweep
            print(f"iclx: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from e
        # a sweeper may keep state beside the jobs before any job exists (Optuna's study database)
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        outcome.started = True
        try:
            self._summarize(config)
        except Exception as e:  # noqa: BLE001 -- reported by the entrypoint as the sweep's failure
            outcome.error = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"

    @staticmethod
    def _summarize(config: DictConfig) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            raise FileNotFoundError(f"the sweep folder {sweep_dir} does not exist (no job ran)")
        report = OmegaConf.to_container(config.get("report") or {}, resolve=True)
        title = str(config.get("sweep_name") or config.get("name") or sweep_dir.parent.name)
        csv_path, plot_path, table = summarize_sweep(sweep_dir, report, title)  # type: ignore[arg-type]
        if is_optuna_sweep(config):  # trials of a persistent study: the objective per trial, best marked
            _, plot_path, study_lines = summarize_study(config, sweep_dir, read_jobs(sweep_dir), title)
            table += "\n\n" + study_lines
        print(f"\n{table}\n", flush=True)
        print(f"iclx: sweep summary {csv_path}" + (f", plot {plot_path}" if plot_path else ""), flush=True)
        if (config.get("logger") or {}).get("wandb"):
            from iclx.loggers import log_sweep_summary

            log_sweep_summary(config.logger, sweep_dir, title, csv_path, plot_path)
        jobs = read_jobs(sweep_dir)
        outcome.failed_jobs = sum(j["status"] != "ok" for j in jobs)
        if any(j["status"] == "ok" for j in jobs):  # a report key no finished job answers is a typo
            check_report([j for j in jobs if j["status"] == "ok"], report)  # type: ignore[arg-type]
        outcome.summarized = True
