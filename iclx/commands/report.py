"""``iclx report``: a sweep's summary table and plot, rebuilt from its finished job folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iclx.commands import UsageError, command_parser
from iclx.errors import DataError
from iclx.registry import register


@register("command", "report")
def report(argv: list[str]) -> int:
    """Rebuild summary.csv and summary.png of sweeps from their job folders, and print the table.

    Nothing is rerun: each job's row comes from its folder (.hydra/overrides.yaml, summary.json),
    so this works after the sweep's parent process crashed, and merges sweeps of one experiment.
    What is plotted is the `report` section saved with the first job (.hydra/config.yaml), as the
    sweep itself would have plotted it; --metric/--curve/--by replace its keys.

    One folder: the files are written into it (as at the end of the sweep). Several folders: their
    jobs become one table, each row named <folder>/<job> (job numbers restart in every sweep), and
    --out names where the files go, so that no sweep's own summary is overwritten.

    Exit status 0 when the summary was written (failed jobs are rows with status failed), 1 on bad
    input: a folder that does not exist or holds no job folders, or a --metric, --curve or --by
    that no job answers.
    """
    parser = command_parser("report", report.__doc__)
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR",
                        help="a multirun folder: sweeps/<sweep_name>/<date>_<time>, holding job folders 0/, 1/, ...")
    parser.add_argument("--metric", metavar="NAME", help="the headline scalar, e.g. probe/loss_ratio (plotted unless --curve is given)")
    parser.add_argument("--curve", action="append", type=_names, metavar="PREFIX",
                        help="a metric prefix whose numeric suffix is the x axis, e.g. evaluate/accuracy_k; "
                             "repeat it (or separate by commas) for one line style per prefix")
    parser.add_argument("--by", action="append", type=_names, metavar="KEY",
                        help="override keys that name the lines, e.g. selector (repeat or separate by commas); "
                             "default: every key whose value differs between jobs, but seed")
    parser.add_argument("--out", type=Path, metavar="DIR", help="folder for summary.csv and summary.png "
                                                 "(default: the sweep folder; required with several)")
    args = parser.parse_args(argv)

    from iclx.sweep_summary import check_report, read_jobs, summarize_jobs

    sweep_dirs = [_sweep_folder(d) for d in args.sweep_dirs]
    if len({d.resolve() for d in sweep_dirs}) < len(sweep_dirs):
        raise UsageError("report: a sweep folder is given twice")
    if len(sweep_dirs) > 1 and args.out is None:
        raise UsageError("report: with several sweep folders, name the folder for the merged summary: --out DIR")
    labels = folder_labels(sweep_dirs) if len(sweep_dirs) > 1 else [None]
    jobs = [job for folder, label in zip(sweep_dirs, labels) for job in read_jobs(folder, label)]

    typed = {"metric": args.metric, "curve": _flat(args.curve), "by": _flat(args.by)}
    check_report(jobs, {k: v for k, v in typed.items() if v is not None}, key_prefix="--")
    saved = saved_job_config(sweep_dirs[0])
    chosen = report_options(saved.get("report") or {}, **typed)
    out_dir = args.out or sweep_dirs[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    title = str(saved.get("title") or sweep_dirs[0].parent.name)
    if len(sweep_dirs) > 1:
        title += f", {len(sweep_dirs)} sweeps"
    csv_path, plot_path, table = summarize_jobs(jobs, chosen, out_dir, title)
    print(f"\n{table}\n", flush=True)
    print(f"iclx: sweep summary {csv_path}" + (f", plot {plot_path}" if plot_path else ""), flush=True)
    return 0


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _flat(groups: list[list[str]] | None) -> list[str] | None:
    return [name for group in groups for name in group] if groups else None


def report_options(saved: dict[str, Any], metric: str | None, curve: list[str] | None, by: list[str] | None) -> dict[str, Any]:
    """The saved ``report`` section with the command line's choices. --metric or --curve chooses
    what is plotted, so either replaces both saved keys (a saved curve would hide a new metric)."""
    chosen = dict(saved)
    if metric is not None or curve is not None:
        chosen["metric"], chosen["curve"] = metric, curve
    if by is not None:
        chosen["by"] = by
    return chosen


def _sweep_folder(path: Path) -> Path:
    from iclx.sweep_summary import job_folders

    if not path.exists():
        raise DataError(f"sweep folder '{path}' does not exist")
    if not path.is_dir():
        raise DataError(f"'{path}' is not a folder: give a sweep folder (sweeps/<sweep_name>/<date>_<time>)")
    if not job_folders(path):
        sweeps = sorted(str(p) for p in path.iterdir() if p.is_dir() and job_folders(p))
        hint = f"; the sweep folders in it: {', '.join(sweeps[-3:])}" if sweeps else ""
        raise DataError(f"'{path}' has no job folders (0/, 1/, ...): it is not a sweep folder{hint}")
    return path


def folder_labels(folders: list[Path]) -> list[str]:
    """The shortest trailing part of each folder's path that tells it from the others."""
    parts = [f.resolve().parts for f in folders]
    for depth in range(1, max(map(len, parts)) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(f) for f in folders]


def saved_job_config(sweep_dir: Path) -> dict[str, Any]:
    """``report`` and ``title`` of the sweep, as its first job saved them (empty when it saved none).

    The title is the sweep's name: ``sweep_name`` when the saved config states it plainly, else the
    run name in the job's summary.json (``sweep_name`` defaults to it through an interpolation that
    only resolves inside Hydra).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from iclx.sweep_summary import job_folders

    first = job_folders(sweep_dir)[0]
    config_file = first / ".hydra" / "config.yaml"
    if not config_file.is_file():
        return {}
    try:
        cfg = OmegaConf.load(config_file)
        report = OmegaConf.to_container(cfg.get("report") or OmegaConf.create(), resolve=True)
    except (OmegaConfBaseException, ValueError, OSError) as e:
        raise DataError(f"{config_file}: cannot read its report section: {e}") from e
    plain_name = "sweep_name" in cfg and not OmegaConf.is_interpolation(cfg, "sweep_name")
    title = cfg.sweep_name if plain_name else None
    if title is None:
        try:
            title = json.loads((first / "summary.json").read_text()).get("name")
        except (OSError, ValueError):
            title = None
    return {"report": report, "title": title}
