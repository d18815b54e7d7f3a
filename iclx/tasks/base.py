"""The ``task`` group: an ICL task is a demonstration pool, a set of queries and a label set.

    task = load_task(cfg.task, run=run)   # Task(pool, queries, labels, template, name)

Every task component (``@register("task", name)``) returns a :class:`Task`. Classification tasks
have ``labels``, the verbalized outputs a query is scored over; open-ended tasks have
``labels=None`` and are scored by greedy generation and exact match. The ``template`` section of
a task config (see ``template.py``) says how examples become a prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iclx.errors import ConfigError, DataError
from iclx.registry import _plain, build, check_arguments, known, parameters
from iclx.tasks.example import Example
from iclx.tasks.template import Template

log = logging.getLogger("iclx")

# ``package:sst2/stsa.binary.dev`` names a file shipped inside iclx (iclx/resources/...)
PACKAGE_PREFIX = "package:"
RESOURCES = Path(__file__).resolve().parents[1] / "resources"


@dataclass
class Task:
    name: str
    pool: list[Example]  # where demonstrations come from
    queries: list[Example]  # what the model is asked
    labels: list[str] | None  # verbalized label set (classification); None: open-ended
    template: Template
    # a meta key: a query's demonstrations come only from pool examples with its value (GINC's
    # matched prompts); None: every query draws from the whole pool
    group_key: str | None = None
    # a pool example whose input text equals a query's is that query's answer key (a duplicate
    # record): left out of the pool; synthetic tasks whose inputs repeat by chance say False
    exclude_query_twins: bool = True
    # an ideal predictor to compare the model with, where the task's generating process is known:
    # ``reference.metrics(queries, pool_indices, predictions, scores, labels)`` -> {name: value}
    # per k (GINC: the Bayes-optimal posterior predictive, iclx.tasks.ginc.BayesReference)
    reference: Any = None

    @property
    def open_ended(self) -> bool:
        return self.labels is None

    @property
    def shared_split(self) -> bool:
        """Whether some query is also in the pool (then it must never be its own demonstration)."""
        pool_ids = {e.id for e in self.pool}
        return any(q.id in pool_ids for q in self.queries)


def load_task(cfg: Mapping[str, Any], *, key: str = "task", **runtime: Any) -> Task:
    """Build the task component named by ``cfg`` and attach its template; check what it returns.

    ``runtime`` offers what iclx knows (``data``: the run's corpus config); a task gets the ones
    its signature takes.
    """
    params = dict(_plain(cfg))
    template = build_template(params.get("template"), key=f"{key}.template")
    name = str(params.get("name", ""))
    accepted = set(parameters("task", name)) if name in known("task") else set()
    runtime = {k: v for k, v in runtime.items() if k in accepted}
    task = build("task", params, key=key, exclude=("template",), **runtime)
    if not isinstance(task, Task):
        raise TypeError(f"task '{params.get('name')}' returned {type(task).__name__}, not a Task")
    task.template = template
    if not task.pool:
        raise DataError(f"{key}: the demonstration pool is empty")
    if not task.queries:
        raise DataError(f"{key}: there are no queries")
    return task


def build_template(cfg: Mapping[str, Any] | None, *, key: str = "task.template") -> Template:
    params = dict(_plain(cfg) or {})
    return Template(**check_arguments("template", Template, params, key=key))


def resolve_path(path: str | Path, *, key: str) -> Path:
    """A data file named in a config: ``package:<rel>`` is shipped with iclx; others are plain paths."""
    text = str(path)
    resolved = RESOURCES / text[len(PACKAGE_PREFIX) :] if text.startswith(PACKAGE_PREFIX) else Path(text).expanduser()
    if not resolved.is_file():
        raise DataError(f"{key}: no such file {resolved}")
    return resolved


def verbalize(label: Any, verbalizer: Mapping[str, str] | None, *, where: str, key: str) -> str:
    """The output text of ``label``: its verbalizer entry, or the label itself without a verbalizer."""
    if verbalizer is None:
        return str(label)
    text = verbalizer.get(str(label))
    if text is None:
        raise DataError(
            f"{where}: label '{label}' is not in {key}.verbalizer (known: {', '.join(map(str, verbalizer))})"
        )
    return text


def label_set(examples: Sequence[Example], verbalizer: Mapping[str, str] | None) -> list[str]:
    """The verbalized labels in a fixed order: the verbalizer's, else first appearance in ``examples``."""
    if verbalizer is not None:
        return list(dict.fromkeys(verbalizer.values()))
    return list(dict.fromkeys(e.output for e in examples))


def subsample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most ``limit`` examples, a seeded random subset kept in file order (None: all)."""
    if limit is None or limit >= len(examples):
        return examples
    if limit < 0:
        raise ConfigError(f"a size limit must be >= 0, got {limit}")
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return [examples[i] for i in keep]
