"""The ``task`` group: an ICL task is a demonstration pool, a set of queries and a label set.

    task = load_task(cfg.task, run=run)   # Task(pool, queries, labels, template, name)

Every task component (``@register("task", name)``) returns a :class:`Task`. Classification tasks
have ``labels``, the verbalized outputs a query is scored over; multiple-choice tasks whose
queries each have their own choices (``Example.choices``) have ``labels=None`` and
``multiple_choice``; open-ended tasks have neither and are scored by greedy generation and exact
match. The ``template`` section of a task config (see ``template.py``) says how examples become a
prompt; how a dataset's records become examples, ``records.py``.

The run reads its task before any stage runs (``precheck_task``, from ``iclx.cli``), so a
bad field, template or label stops it before pre-training or loading a model; ``load_task`` then
hands the evaluate stage that same task instead of reading it again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
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
    labels: list[str] | None  # verbalized label set (classification); None: open-ended, or per-query choices
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
    def multiple_choice(self) -> bool:
        """Whether queries carry their own choices (``Example.choices``) instead of one label set."""
        return any(q.choices is not None for q in self.queries)

    @property
    def open_ended(self) -> bool:
        return self.labels is None and not self.multiple_choice

    def choices_of(self, example: Example) -> list[str] | None:
        """What ``example`` is scored over: its own choices, else the task's labels (None: open-ended)."""
        return example.choices if example.choices is not None else self.labels

    @property
    def shared_split(self) -> bool:
        """Whether some query is also in the pool (then it must never be its own demonstration)."""
        pool_ids = {e.id for e in self.pool}
        return any(q.id in pool_ids for q in self.queries)


def load_task(cfg: Mapping[str, Any], *, key: str = "task", per_query_choices: bool = False, **runtime: Any) -> Task:
    """Build the task component named by ``cfg`` and attach its template; check what it returns.

    ``runtime`` offers what iclx knows (``data``: the run's corpus config); a task gets the ones
    its signature takes. ``per_query_choices``: the caller scores each query over its own choices
    (``Task.choices_of``); without it a task whose queries have their own choices is refused
    rather than scored over a label set that is not theirs.
    """
    task = _take_prechecked(cfg, key, runtime) or read_task(cfg, key=key, **runtime)
    if task.multiple_choice and not per_query_choices:
        raise ConfigError(f"{key}.doc_to_choice gives each query its own choices, which this evaluation does not score "
                          f"per query yet; list one label set instead (e.g. {key}.doc_to_choice=[A,B,C,D])")
    return task


# The task the pre-run check read, by its config: load_task hands it over once (a copy), so the
# evaluate stage does not read the files again.
_prechecked: dict[str, Task] = {}


def precheck_task(cfg: Mapping[str, Any], *, key: str = "task", **runtime: Any) -> Task:
    """Read the task now, before any stage runs, so that its errors stop the run at once."""
    task = read_task(cfg, key=key, **runtime)
    _prechecked.clear()
    _prechecked[_config_id(cfg, key, runtime)] = task
    return task


def _take_prechecked(cfg: Mapping[str, Any], key: str, runtime: Mapping[str, Any]) -> Task | None:
    task = _prechecked.pop(_config_id(cfg, key, runtime), None)
    if task is None:
        return None
    return dataclasses.replace(task, pool=list(task.pool), queries=list(task.queries))


def _config_id(cfg: Mapping[str, Any], key: str, runtime: Mapping[str, Any]) -> str:
    def canonical(value: Any) -> Any:  # mappings with keys of mixed types ({0: ..., DESC: ...}) sort by repr
        if isinstance(value, Mapping):
            return sorted((repr(k), canonical(v)) for k, v in value.items())
        return [canonical(v) for v in value] if isinstance(value, (list, tuple)) else value

    return json.dumps(canonical([key, _plain(cfg), {k: _plain(v) for k, v in runtime.items()}]), default=repr)


def read_task(cfg: Mapping[str, Any], *, key: str = "task", **runtime: Any) -> Task:
    """The task ``cfg`` names, built, with its template attached and checked."""
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


def resolve_path(path: str | Path, *, key: str, folder: bool = False) -> Path:
    """A data file named in a config: ``package:<rel>`` is shipped with iclx; others are plain
    paths. ``folder``: a folder will do too."""
    resolved = local_path(path)
    if not (resolved.is_file() or (folder and resolved.is_dir())):
        raise DataError(f"{key}: no such file {resolved}")
    return resolved


def local_path(path: str | Path) -> Path:
    text = str(path)
    return RESOURCES / text[len(PACKAGE_PREFIX) :] if text.startswith(PACKAGE_PREFIX) else Path(text).expanduser()


def subsample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most ``limit`` examples, a seeded random subset kept in file order (None: all)."""
    if limit is None or limit >= len(examples):
        return examples
    if limit < 0:
        raise ConfigError(f"a size limit must be >= 0, got {limit}")
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return [examples[i] for i in keep]
