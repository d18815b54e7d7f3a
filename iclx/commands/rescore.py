"""``iclx rescore RUN_DIR``: an evaluate run's table again from its saved scores, without the model."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from iclx.commands import UsageError, command_parser
from iclx.errors import DataError
from iclx.registry import register

PREDICTIONS_FILE = "predictions.jsonl"  # as the evaluate stage writes it


@register("command", "rescore")
def rescore(argv: list[str]) -> int:
    """Recompute an evaluate run's table (accuracy with its 95% interval, macro-F1) from predictions.jsonl.

    The run saved every label's summed log-likelihood, its token count and the content-free
    inputs' sums, so calibration on or off and sum or mean (per-token) normalization need no
    model: by default the run's own settings (its table, reproduced exactly), or --calibration,
    --no-calibration, --normalization mean|sum. The table is printed and written to
    RUN_DIR/evaluate_rescored_<calibration>_<normalization>.csv (or --out FILE).

    Open-ended tasks have no label scores: their rows keep the run's predictions.
    """
    parser = command_parser("rescore", rescore.__doc__)
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder with predictions.jsonl (outputs/<name>/<date>_<time>)")
    calibration = parser.add_mutually_exclusive_group()
    calibration.add_argument("--calibration", dest="calibration", action="store_true", default=None,
                             help="contextual calibration against the saved content-free scores")
    calibration.add_argument("--no-calibration", dest="calibration", action="store_false", help="no calibration")
    parser.add_argument("--normalization", choices=["sum", "mean"], help="label scores summed over tokens or per token")
    parser.add_argument("--out", type=Path, metavar="FILE", help="the CSV to write (default: in RUN_DIR)")
    args = parser.parse_args(argv)

    records = read_predictions(args.run_dir)
    saved = run_settings(args.run_dir)
    calibrate = saved["calibration"] if args.calibration is None else args.calibration
    normalization = args.normalization or saved["normalization"]
    rows = rescored_rows(records, calibrate, normalization, where=args.run_dir / PREDICTIONS_FILE)

    from iclx.tables import format_table, write_csv

    columns = ["line", "k", "accuracy", "accuracy_low", "accuracy_high", "macro_f1", "queries"]
    out = args.out or args.run_dir / f"evaluate_rescored_{'calibrated' if calibrate else 'uncalibrated'}_{normalization}.csv"
    write_csv(out, columns, rows)
    print(f"{args.run_dir}: calibration {'on' if calibrate else 'off'}, normalization {normalization}")
    print(format_table(columns, rows))
    print(f"written to {out}")
    return 0


def read_predictions(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / PREDICTIONS_FILE
    if not run_dir.is_dir():
        raise DataError(f"rescore: no run folder {run_dir}")
    if not path.is_file():
        raise DataError(f"rescore: {run_dir} has no {PREDICTIONS_FILE} (a run with the evaluate stage writes it)")
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"rescore: {path}:{number}: not valid JSON ({e.msg})") from None
    if not records:
        raise DataError(f"rescore: {path} is empty")
    return records


def run_settings(run_dir: Path) -> dict[str, Any]:
    """The run's own evaluate.calibration and evaluate.normalization (its saved .hydra/config.yaml)."""
    from omegaconf import OmegaConf

    path = run_dir / ".hydra" / "config.yaml"
    evaluate = OmegaConf.load(path).get("evaluate") if path.is_file() else None
    if evaluate is None:
        return {"calibration": False, "normalization": "sum"}
    return {"calibration": bool(evaluate.get("calibration", False)), "normalization": str(evaluate.get("normalization", "sum"))}


def rescored_rows(records: list[dict[str, Any]], calibration: bool, normalization: str, *, where: Path) -> list[list[Any]]:
    """One row per (line, k): accuracy, its bootstrap interval, macro-F1, the number of queries."""
    import numpy as np

    from iclx.statistics import bootstrap_interval
    from iclx.tasks.icl import line_name
    from iclx.tasks.metrics import accuracy, macro_f1

    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["task"], record["selector"], int(record["k"]))].append(record)
    variants = list(dict.fromkeys(task for task, _, _ in groups))
    selectors = list(dict.fromkeys(selector for _, selector, _ in groups))
    rows = []
    for (task, selector, k), group in groups.items():
        predictions = [_prediction(r, calibration, normalization, where) for r in group]
        gold = [r["gold"] for r in group]
        correct = np.array([p == g for p, g in zip(predictions, gold)], dtype=float)
        interval = bootstrap_interval(correct)
        rows.append([line_name(task, selector, len(variants), len(selectors)), k, accuracy(predictions, gold),
                     interval.low, interval.high, macro_f1(predictions, gold), len(group)])
    return rows


def _prediction(record: dict[str, Any], calibration: bool, normalization: str, where: Path) -> str:
    from iclx.tasks.icl import label_scores

    if "logprob_sum" not in record:
        if not record.get("scores"):  # open-ended: a generated answer, nothing to rescore
            return record["prediction"]
        raise DataError(f"rescore: {where}: query {record['query']} has no saved label sums (written by an older "
                        "iclx); run the evaluation again")
    labels = list(record["logprob_sum"])
    sums = [[record["logprob_sum"][label] for label in labels]]
    lengths = [record["label_tokens"][label] for label in labels]
    content_free = None
    if calibration:
        if not record.get("content_free_sum"):
            raise UsageError(f"rescore: --calibration needs content-free scores, and {where} has none "
                             "(the run had evaluate.save_content_free=false)")
        content_free = [[[row[label] for label in labels] for row in record["content_free_sum"].values()]]
    scores = label_scores(sums, lengths, content_free, normalization, calibration)[0]
    return labels[int(scores.argmax())]
