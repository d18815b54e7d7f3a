"""``task=hf``: an ICL task from a Hugging Face ``datasets`` dataset (optional extra ``iclx[hf]``).

``pool`` and ``queries`` (default: the pool's) each name a dataset: a folder written by ``save_to_disk`` (a
``DatasetDict``: ``pool_split`` / ``queries_split`` choose the split), a parquet, json(l) or csv
file (one split), a folder of such files (splits from their names: ``train*.parquet``,
``validation*``/``dev*``, ``test*``), or a hub name (``subset`` is its config; downloaded to the
Hugging Face cache). Records become examples as in every file task (``records.py``). Ids are
``<pool or queries as configured>[<split>]:<row>`` (rows from 0), so one dataset split named as
both pool and queries gives each row one id. A ``ClassLabel`` label field without a verbalizer is
verbalized by its class names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iclx.data.hf import LOCAL_BUILDERS
from iclx.errors import ConfigError, DataError
from iclx.registry import register
from iclx.tasks.base import PACKAGE_PREFIX, Task, local_path, subsample
from iclx.tasks.records import Record, RecordFormat, UnmappedLabels
from iclx.tasks.template import Template

log = logging.getLogger("iclx")


def load_split(path: str, split: str, subset: str | None, *, key: str, split_key: str, name: str | None = None) -> tuple[Any, str]:
    """The dataset at ``path`` (its ``split`` where it has several) and how ids name it (``name``,
    default ``path``, with the split where there are several)."""
    try:
        import datasets
    except ImportError as e:
        raise ConfigError("task 'hf' needs the optional extra: pip install 'iclx[hf]'") from e
    local = local_path(path)
    path = name or path
    try:
        if (local / "dataset_info.json").is_file():  # one Dataset.save_to_disk: no splits
            return datasets.load_from_disk(str(local)), str(path)
        if (local / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(local))
            return _split(loaded, split, local, split_key), f"{path}[{split}]"
        if local.is_file():
            builder = LOCAL_BUILDERS.get(local.suffix)
            if builder is None or builder == "text":
                raise DataError(f"{key}: {local} is not a {'/'.join(s for s, b in LOCAL_BUILDERS.items() if b != 'text')} file")
            return datasets.load_dataset(builder, data_files=[str(local)], split="train"), str(path)
        if local.is_dir():
            files = sorted(p for p in local.iterdir() if LOCAL_BUILDERS.get(p.suffix) not in (None, "text"))
            if not files:
                raise DataError(f"{key}: {local} holds no save_to_disk dataset and no parquet/json/jsonl/csv file")
            loaded = datasets.load_dataset(LOCAL_BUILDERS[files[0].suffix], data_dir=str(local))
            return _split(loaded, split, local, split_key), f"{path}[{split}]"
        if str(path).startswith(PACKAGE_PREFIX) or str(path).startswith((".", "/", "~")):
            raise DataError(f"{key}: no such file or folder {local}")
        return datasets.load_dataset(str(path), subset, split=split), f"{path}[{split}]"
    except (DataError, ConfigError):
        raise
    except Exception as e:  # datasets' errors are long; keep the first line and name the key
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{key}: cannot load Hugging Face dataset '{path}' [{split}]: {first}") from e


def _split(loaded: Any, split: str, where: Path, split_key: str) -> Any:
    if split not in loaded:
        raise ConfigError(f"{split_key}: {where} has no split '{split}' (its splits: {', '.join(loaded)})")
    return loaded[split]


def records(dataset: Any, source: str) -> Iterator[Record]:
    for row, fields in enumerate(dataset):
        yield Record(source, row, dict(fields), f"{source} row {row}")


def class_names(dataset: Any, label_field: str) -> dict[str, str] | None:
    """``{0: World, 1: Sports, ...}`` when ``label_field`` is a ClassLabel feature, else None."""
    feature = getattr(dataset, "features", {}).get(label_field) if getattr(dataset, "features", None) else None
    names = getattr(feature, "names", None)
    return {str(i): str(n) for i, n in enumerate(names)} if names else None


@register("task", "hf")
def hf_task(
    pool: str,
    queries: str | None = None,
    pool_split: str = "train",
    queries_split: str = "validation",
    subset: str | None = None,
    input_field: str = "text",
    label_field: str = "label",
    doc_to_text: str | None = None,
    doc_to_target: str | None = None,
    doc_to_choice: str | list[str] | None = None,
    label_pattern: str | None = None,
    verbalizer: dict[str, str] | None = None,
    unmapped_labels: UnmappedLabels = "error",
    open_ended: bool = False,
    max_pool: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
) -> Task:
    """A Hugging Face dataset's records as pool and queries (see the module docstring)."""
    queries = pool if queries is None else queries
    # one dataset named as both pool and queries (even spelled differently) keeps one name: one id per row
    same = pool == queries or (local_path(pool).exists() and local_path(pool).resolve() == local_path(queries).resolve())
    loaded = {
        "pool": load_split(pool, pool_split, subset, key="task.pool", split_key="task.pool_split"),
        "queries": load_split(queries, queries_split, subset, key="task.queries", split_key="task.queries_split",
                              name=pool if same else None),
    }
    if verbalizer is None and doc_to_target is None and doc_to_choice is None and not open_ended:
        verbalizer = class_names(loaded["pool"][0], label_field)
        if verbalizer is not None:
            log.info("task: %s is a ClassLabel; its names verbalize it: %s", label_field, verbalizer)
    form = RecordFormat(input_field, label_field, doc_to_text, doc_to_target, doc_to_choice, label_pattern, verbalizer,
                        unmapped_labels, open_ended)
    drafts = {}
    for split, (dataset, source) in loaded.items():
        drafts[split] = form.drafts(records(dataset, source))
        if not drafts[split]:
            raise DataError(f"task.{split}: {source} has no records")
    examples, labels = form.examples(drafts)
    limits = {"pool": max_pool, "queries": max_queries}
    for split in ("pool", "queries"):
        if not examples[split]:
            raise DataError(f"task.{split}: no examples left in {loaded[split][1]}: task.unmapped_labels=warn dropped every "
                            "record, as none has a label the task maps")
    splits = {split: subsample(examples[split], limits[split], seed) for split in ("pool", "queries")}
    return Task(name="hf", pool=splits["pool"], queries=splits["queries"], labels=labels, template=Template())
