"""Stage ``evaluate``: in-context learning accuracy vs number of demonstrations k.

For every task variant (``evaluate.variants``, default: the ``task`` as configured) and every
selector (``evaluate.selectors``, default: the ``selector`` group's choice), the selector ranks
``max(shots)`` demonstrations per query once, and each k in ``evaluate.shots`` builds prompts from
the first k of them, scores the labels and predicts. Per k it records accuracy, macro-F1, the
share of the prompts' demonstrations whose label is the query's (``label_agreement``; GINC adds
``concept_agreement``), the mean number of demonstrations that reached the prompt
(``demos_used``) and the share of prompts that had to drop some to fit the context
(``truncated``). Prompts that hold fewer than k, and predictions that are nearly all one label,
are warned about with their counts; a k-shot prompt that cannot hold even one demonstration
stops the run (``ICLEvaluator.check_fit``).

Outputs: ``predictions.jsonl`` (per query and k: demonstration ids in prompt order, every label's
score, the prediction, the gold), a table in the log and ``evaluate_results.csv``, the plot
``plots/evaluate_accuracy.png`` (accuracy vs k, one line per variant and selector), and summary
metrics ``accuracy_k<k>`` (``<line>/accuracy_k<k>`` when a run has several lines), which a
multirun draws as curves with ``report.curve: evaluate/accuracy_k``.

The model is the run's language model (``iclx.lineage.Lineage.language_model``):
``pretrain.checkpoint`` (a model folder, ``model.pt`` or ``.ckpt``) when set, a Hugging Face model
(``model=hf model.path=... tokenizer=pretrained``), or the pre-training artifact of this config.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from iclx.artifacts import atomic_open, config_key
from iclx.errors import ConfigError
from iclx.registry import _plain, register
from iclx.sections import EvaluateSection
from iclx.selectors.base import SelectionContext
from iclx.selectors.quality import label_agreement
from iclx.statistics import bootstrap_interval
from iclx.tables import format_table
from iclx.tasks.base import Task, load_task, subsample
from iclx.tasks.icl import (
    DemonstrationLikelihood,
    ICLEvaluator,
    QueryResult,
    choose_demonstrations,
    degradation_warnings,
    drop_query_twins,
    line_name,
    summarize,
)

log = logging.getLogger("iclx")

PREDICTIONS_FILE = "predictions.jsonl"


@register("stage", "evaluate")
def evaluate(run: Any) -> dict[str, Any]:
    from iclx.progress import progress

    cfg = run.cfg
    section = EvaluateSection.from_config(cfg)  # typed and checked once (iclx.sections); defaults in conf/config.yaml
    shots = section.sorted_shots
    settings = section.scoring_settings()
    selectors = selector_configs(cfg, section.selectors)
    variants = task_variants(cfg, section.variants)
    tasks = {}  # read before the model: a bad task file fails before pre-training or loading runs
    for variant, task_cfg in variants.items():
        tasks[variant] = load_task(task_cfg, key="task" if len(variants) == 1 else f"evaluate.variants.{variant}", data=cfg.get("data"))
        tasks[variant].queries = subsample(tasks[variant].queries, section.num_queries, seed=0)
        drop_query_twins(tasks[variant])
    lm = run.lineage.language_model()
    model, tokenizer, model_key = lm.model, lm.tokenizer, lm.key
    model.to(pick_device(section.device)).eval()
    lines: dict[str, dict[int, dict[str, float]]] = {}  # line -> k -> metrics
    chance: dict[str, float] = {}
    with atomic_open(run.out_dir / PREDICTIONS_FILE) as predictions, \
            progress(total=len(variants) * len(selectors) * len(shots), desc="evaluate", unit="k") as bar:
        for variant, task in tasks.items():
            evaluator = ICLEvaluator(model, tokenizer, task, settings, max_tokens=int(model.max_seq_len), seed=run.seed)
            context = SelectionContext(
                run=run,
                seed=run.seed,
                embedder_args={"model": model, "tokenizer": tokenizer, "model_key": model_key},
                scorer=DemonstrationLikelihood(evaluator),
                # what S(e) depends on: the weights, and how a demonstration and the query are written
                scorer_key=config_key(model_key, dataclasses.asdict(task.template), settings.prompt_start),
                trainer=run.cfg.trainer,
            )
            log.info(
                "evaluate %s: %d queries, pool %d, %s, shots %s, selectors %s",
                task.name, len(task.queries), len(task.pool),
                f"{len(task.labels)} labels" if task.labels else "open-ended", shots, ", ".join(selectors),
            )
            for selector_name, selector_cfg in selectors.items():
                line = line_name(variant, selector_name, len(variants), len(selectors))
                chance[line] = 1 / len(task.labels) if task.labels else float("nan")
                ranked = choose_demonstrations(selector_cfg, task, max(shots), context)
                lines[line] = {}
                for k in shots:
                    bar.set_postfix_str(f"{line} k={k}")
                    results = evaluator.evaluate(ranked, k)
                    for message in degradation_warnings(results, k, evaluator.max_tokens):
                        log.warning("evaluate: %s%s", "" if line == "all" else f"{line} ", message)
                    metrics = lines[line][k] = k_metrics(task, results)
                    run.log_metrics({f"evaluate/{metric_name(line, name, k)}": v for name, v in metrics.items()})
                    predictions.writelines(
                        json.dumps(prediction_record(variant, selector_name, k, r, evaluator, settings)) + "\n" for r in results
                    )
                    bar.update()
    report(run, lines, chance)
    return {metric_name(line, name, k): v for line, per_k in lines.items() for k, m in per_k.items() for name, v in m.items()}


# --- configuration -----------------------------------------------------------------------------


def selector_configs(cfg: Any, names: Any) -> dict[str, dict[str, Any]]:
    """Label -> selector config. ``evaluate.selectors`` lists selector group options by name
    (``[random, knn]``: their ``conf/selector/<name>.yaml``, or the composed ``selector`` section
    when it is that selector) or full configs (``{name: knn, ...}``); null means the ``selector``
    group's choice."""
    names = _plain(names)
    if names is None:
        selector = _plain(cfg.get("selector"))
        if not selector:
            raise ConfigError("no selector: choose one (selector=random) or list them in evaluate.selectors")
        return {str(selector["name"]): selector}
    if not isinstance(names, list) or not names:
        raise ConfigError(f"evaluate.selectors must be a non-empty list of selector names or configs, got {names!r}")
    composed = _plain(cfg.get("selector")) or {}
    out: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(names):
        if isinstance(item, str):
            # the composed selector carries the command line's overrides (selector.embedder.name=...)
            selector = composed if composed.get("name") == item else selector_preset(item)
        else:
            selector = _plain(item)
        if not isinstance(selector, dict) or "name" not in selector:
            raise ConfigError(f"evaluate.selectors[{i}] must be a selector name or a mapping with a name, got {item!r}")
        label = str(selector["name"])
        if label in out:
            label = f"{label}{i}"
        out[label] = selector
    return out


def selector_preset(name: str) -> dict[str, Any]:
    """``conf/selector/<name>.yaml`` as a plain config; ``{name: <name>}`` when there is no preset."""
    from iclx.config_folder import conf_dir

    path = conf_dir() / "selector" / f"{name}.yaml"
    return _plain(OmegaConf.load(path)) if path.is_file() else {"name": name}


def task_variants(cfg: Any, variants: Any) -> dict[str, Any]:
    """Label -> task config: the ``task`` itself, or it updated by each ``evaluate.variants`` entry
    (``{ood: {split: ood}, len8: {example_length: 8}}``)."""
    base, variants = cfg.get("task"), _plain(variants)
    if base is None:
        raise ConfigError("no task: choose one, e.g. task=ginc or task=sst2")
    if not variants:
        return {str(base.get("name")): base}
    if not isinstance(variants, dict):
        raise ConfigError(f"evaluate.variants must map a name to task overrides, got {variants!r}")
    out = {}
    for name, overrides in variants.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"evaluate.variants.{name} must be a mapping of task keys, got {overrides!r}")
        out[str(name)] = OmegaConf.merge(base, overrides)
    return out


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --- metrics, outputs ----------------------------------------------------------------------------


def k_metrics(task: Task, results: list[QueryResult]) -> dict[str, float]:
    """The metrics of one k; the agreements count the demonstrations that reached the prompt,
    not those the selector chose and the context could not hold."""
    metrics = summarize(results)
    if results:
        interval = bootstrap_interval(np.array([r.correct for r in results], dtype=float))
        metrics["accuracy_low"], metrics["accuracy_high"] = interval.low, interval.high
    chosen = [r.pool_indices for r in results]
    if task.reference is not None and task.labels and results:
        scores = np.array([[r.scores[label] for label in task.labels] for r in results])
        metrics.update(task.reference.metrics(
            [r.query for r in results], [[task.pool[i] for i in ids] for ids in chosen], [r.prediction for r in results],
            scores, task.labels))
    agreement = label_agreement(task.pool, task.queries, chosen)
    if agreement is not None:
        metrics["label_agreement"] = agreement
    if all("concept" in e.meta for e in task.queries):
        same = [task.pool[i].meta.get("concept") == q.meta["concept"] for q, ids in zip(task.queries, chosen) for i in ids]
        if same:
            metrics["concept_agreement"] = float(np.mean(same))
    return metrics


def metric_name(line: str, name: str, k: int) -> str:
    return (f"{line}/" if line != "all" else "") + f"{name}_k{k}"


def prediction_record(variant: str, selector: str, k: int, result: QueryResult, evaluator: ICLEvaluator | None = None,
                      settings: Any = None) -> dict[str, Any]:
    """One line of predictions.jsonl. Besides the prediction: every label's score as used (after
    normalization and calibration), its summed log-likelihood and its token count (the per-token
    score is their ratio), and the content-free inputs' sums, so ``iclx rescore`` can recompute
    the table with calibration on or off and either normalization, without the model."""
    record: dict[str, Any] = {
        "task": variant,
        "selector": selector,
        "k": k,
        "query": result.query.id,
        "demonstrations": result.demonstrations,
        "scores": {label: round(score, 6) for label, score in result.scores.items()},
        "prediction": result.prediction,
        "gold": result.gold,
        "correct": result.correct,
        "dropped": result.dropped,
    }
    if result.prompt is not None:
        record["prompt"] = result.prompt
    if result.logprob_sums is not None and evaluator is not None:
        labels = list(result.scores)
        record["logprob_sum"] = dict(zip(labels, result.logprob_sums))
        record["label_tokens"] = dict(zip(labels, evaluator.label_lengths))
        if result.content_free_sums is not None:
            rows = zip(settings.content_free, result.content_free_sums)
            record["content_free_sum"] = {text: dict(zip(labels, row)) for text, row in rows}
    return record


def report(run: Any, lines: dict[str, dict[int, dict[str, float]]], chance: dict[str, float]) -> None:
    """The results table (log + evaluate_results.csv) and the accuracy-vs-k plot."""
    from iclx.plots import log2_shots_axis, pyplot

    plt = pyplot()
    names = ["accuracy", "accuracy_low", "accuracy_high", "macro_f1", "bayes_accuracy", "bayes_agreement", "bayes_kl",
             "label_agreement", "concept_agreement", "demos_used", "truncated"]
    names = [n for n in names if any(n in m for per_k in lines.values() for m in per_k.values())]
    rows = [[line, k, *(m.get(n, "") for n in names)] for line, per_k in lines.items() for k, m in per_k.items()]
    run.log_table("evaluate/results", ["line", "k", *names], rows)
    log.info("ICL results\n%s", format_table(["line", "k", *names], rows))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for line, per_k in lines.items():
        ks = sorted(per_k)
        drawn = ax.plot(ks, [per_k[k]["accuracy"] for k in ks], marker="o", label=line if line != "all" else None)
        if all("accuracy_low" in per_k[k] for k in ks):  # 95% bootstrap interval over the queries
            ax.fill_between(ks, [per_k[k]["accuracy_low"] for k in ks], [per_k[k]["accuracy_high"] for k in ks],
                            color=drawn[0].get_color(), alpha=0.15, linewidth=0)
        cut = [k for k in ks if per_k[k].get("truncated", 0) > 0]
        if cut:  # prompts that lost demonstrations to the context length: hollow markers
            ax.plot(cut, [per_k[k]["accuracy"] for k in cut], "o", markerfacecolor="white", color=drawn[0].get_color())
    with_bayes = [line for line, per_k in lines.items() if all("bayes_accuracy" in m for m in per_k.values())]
    if with_bayes:  # the ideal learner on the first line's prompts (on others' it differs by their demonstrations)
        per_k = lines[with_bayes[0]]
        ks = sorted(per_k)
        where = "" if len(lines) == 1 else f" on {with_bayes[0]}'s prompts"
        ax.plot(ks, [per_k[k]["bayes_accuracy"] for k in ks], "k--", marker="x", label=f"Bayes-optimal{where}")
    if any(m.get("truncated", 0) > 0 for per_k in lines.values() for m in per_k.values()):
        ax.plot([], [], "o", markerfacecolor="white", color="gray", label="demonstrations dropped to fit the context")
    levels = sorted({round(c, 6) for c in chance.values() if not np.isnan(c)})
    for level in levels:
        ax.axhline(level, color="gray", linestyle="--", linewidth=1, label=f"chance ({level:.3g})")
    all_k = sorted({k for per_k in lines.values() for k in per_k})
    if not log2_shots_axis(ax, all_k):
        ax.set_xticks(all_k, [str(k) for k in all_k])
    ax.set_xlabel("demonstrations k")
    ax.set_ylabel("ICL accuracy (band: 95% CI over queries)")
    ax.set_title(f"{run.cfg.get('name')}: accuracy vs k", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    run.save_figure(fig, "evaluate_accuracy")
