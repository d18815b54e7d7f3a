"""The Optuna view of a sweep (``hydra/sweeper=optuna``, e.g. ``sweep=optuna_quickstart``).

Each invocation's jobs are trials of one persistent study (its storage, e.g. SQLite beside the
sweep folders), so a second invocation continues it and trial numbers go on. When a sweep ends,
this writes ``study.csv`` (every trial of the study so far: number, state, objective, parameters)
and the plot: the objective per trial, this invocation's trials filled, the best trial marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iclx.artifacts import atomic_open


def is_optuna_sweep(config: Any) -> bool:
    return "optuna" in str(config.hydra.get("sweeper", {}).get("_target_", "")).lower()


def summarize_study(config: Any, sweep_dir: Path, jobs: list[dict[str, Any]], title: str) -> tuple[Path, Path, str]:
    """(study.csv, the plot, a few lines for the console) of the sweep's study."""
    import csv
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    sweeper = config.hydra.sweeper
    study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
    trials = study.trials
    names = sorted({p for t in trials for p in t.params})
    csv_path = sweep_dir / "study.csv"
    with atomic_open(csv_path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "state", "objective", *names])
        for t in trials:
            writer.writerow([t.number, t.state.name, "" if t.value is None else t.value, *(t.params.get(p, "") for p in names)])
    this_invocation = invocation_trials(trials, jobs)
    plot_path = plot_study(trials, this_invocation, str(sweeper.direction), sweep_dir / "summary.png", title)
    done = [t for t in trials if t.value is not None]
    lines = [f"optuna study '{study.study_name}': {len(trials)} trials so far ({len(trials) - len(done)} failed or unfinished)"]
    if done:
        best = study.best_trial
        lines.append(f"best: trial {best.number}, objective {best.value:.4g}, " + " ".join(f"{k}={v}" for k, v in best.params.items()))
    return csv_path, plot_path, "\n".join(lines)


def invocation_trials(trials: list[Any], jobs: list[dict[str, Any]]) -> set[int]:
    """Numbers of the trials this sweep folder's jobs ran: for each job, the latest trial with
    exactly its parameters (a continued study can propose a point again)."""
    numbers: set[int] = set()
    for job in jobs:
        values = dict(o.split("=", 1) for o in job["overrides"] if "=" in o)
        for trial in reversed(trials):
            if trial.number not in numbers and trial.params and all(_same(values.get(k), v) for k, v in trial.params.items()):
                numbers.add(trial.number)
                break
    return numbers


def _same(text: str | None, value: Any) -> bool:
    if text is None:
        return False
    try:
        return float(text) == float(value)
    except (TypeError, ValueError):
        return text == str(value)


def plot_study(trials: list[Any], this_invocation: set[int], direction: str, path: Path, title: str) -> Path:
    from iclx.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    done = [t for t in trials if t.value is not None]
    for mine, style in ((False, dict(facecolors="white", label="earlier invocations")), (True, dict(label="this invocation"))):
        points = [(t.number, t.value) for t in done if (t.number in this_invocation) == mine]
        if points:
            ax.scatter(*zip(*points), edgecolors="C0", **style)
    if done:
        pick = max if "max" in direction.lower() else min
        running, best_so_far = [], None
        for t in done:
            best_so_far = t.value if best_so_far is None else pick(best_so_far, t.value)
            running.append((t.number, best_so_far))
        ax.step(*zip(*running), where="post", color="gray", linewidth=1, label="best so far")
        best = pick(done, key=lambda t: t.value)
        ax.scatter([best.number], [best.value], marker="*", s=200, color="C3", zorder=3, label=f"best (trial {best.number})")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(f"{title}: {len(done)} trials", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
