"""The ``curate`` config group: ``none`` (the default: tokenize reads ``data`` as it is) or a
``pipeline`` of registered steps that datatrove runs before tokenizing.

```
curate:
  name: pipeline
  input: {paths: [crawl/*.warc.gz], text_field: text}   # null paths: the `data` source
  steps:                      # in order; each is a registered curate_step with its own keys
    extract: {timeout: 5.0}
    language: {languages: [en], threshold: 0.65}
    minhash_dedup: {n_grams: 5, buckets: 14, rows: 8}
    quality: null             # null: off
  order: null                 # or [extract, minhash_dedup]: these steps in this order (unlisted: off)
  executor: {name: local, tasks: 4, workers: 2}     # or slurm, ray (the curate/executor group)
```

A step's key is its name unless its config names another (``name: language`` under a second
label); a step ``order`` lists without a config under ``steps`` gets its component's defaults.

The curated corpus is an artifact (``iclx.lineage``: kind ``curate``), keyed by this section
(but the executor's settings other than ``tasks``, which shards the data) and the input's files;
``tokenize`` and ``pack`` read it as the corpus, split into train/validation by ``data.validation``.

How a pipeline runs: neighbouring per-document steps share one datatrove pass; a step that needs
every document first (dedup, a reference distribution, a classifier) writes the stream to shard
files, runs its stages, and the next pass reads the shards again (``iclx.curate.steps.base``).
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from iclx.curate.extra import require_extra
from iclx.curate.inputs import InputSpec
from iclx.data.document import Document
from iclx.errors import ConfigError, DataError
from iclx.registry import _plain, build, register
from iclx.schema import Components, Fields, labelled

log = logging.getLogger("iclx")

StepsConfig = Annotated[dict[str, dict[str, Any] | None], Components("curate_step")]
InputConfig = Annotated[dict[str, Any], Fields(InputSpec, "curate input")]


@register("curate", "none")
class NoCuration:
    """No curation: ``tokenize`` reads the ``data`` source as it is."""


@register("curate", "pipeline")
class CurationPipeline:
    def __init__(
        self,
        steps: StepsConfig,
        order: list[str] | None = None,
        input: InputConfig = {},  # noqa: B006 -- read only
        samples: Annotated[int, Field(ge=0)] = 20,
        near_threshold: Annotated[int, Field(ge=0)] = 10,
        seed: Annotated[int, Field(ge=0)] = 0,
        ledger: bool = False,
    ):
        self.steps_config, self.order = dict(steps), order
        self.input = InputSpec(**input)
        self.samples, self.near_threshold, self.seed, self.ledger = samples, near_threshold, seed, ledger

    @classmethod
    def check_config(cls, values: Mapping[str, Any], key: str) -> None:
        from iclx import registry

        steps, order = values.get("steps") or {}, values.get("order")
        for i, label in enumerate(order or []):
            if steps.get(label) is None:  # listed but not configured: the step's defaults
                registry.check("curate_step", {"name": label}, key=f"{key}.order[{i}]")
        if not (order if order is not None else [v for v in steps.values() if v is not None]):
            raise ConfigError(f"{key}.steps: no step is on; name at least one, or choose curate=none")
        require_extra()
        spec = InputSpec(**(values.get("input") or {}))
        if spec.paths is not None:
            from iclx.curate.inputs import input_files

            input_files(spec)  # a missing file, an empty glob, a file of another format: one line now

    def steps(self) -> list[tuple[str, Any]]:
        """(label, step) in order: ``order``'s labels, or the steps that are on (a null entry is off)."""
        configs = dict(labelled(self.steps_config))
        labels = self.order if self.order is not None else [k for k, v in self.steps_config.items() if v is not None]
        return [(label, build("curate_step", configs.get(f".{label}") or {"name": label}, key=f"curate.steps.{label}"))
                for label in labels]


def curating(cfg: Any) -> bool:
    """Whether the run curates its corpus (``curate`` names a pipeline)."""
    section = cfg.get("curate") if hasattr(cfg, "get") else None
    return section is not None and str(section.get("name", "none")) != "none"


# --- lineage: the curate artifact's material, builder and what tokenize reads ----------------------


def material(cfg: Any) -> dict[str, Any]:
    """What the curated corpus depends on: the section without the executor (but its ``tasks``, which
    shard the data and so decide which copy of a duplicate is kept), and the input's identity."""
    from iclx.curate.inputs import fingerprint, input_files

    section = {k: v for k, v in _plain(cfg.curate).items() if k != "executor"}
    steps = section.get("steps") or {}
    order = section.get("order")
    labels = order if order is not None else [k for k, v in steps.items() if v is not None]
    section["steps"] = [{"label": k, **(steps.get(k) or {})} for k in labels]  # what runs, in order
    section.pop("order", None)
    executor = _plain(cfg.curate.get("executor") or {})
    out: dict[str, Any] = {"curate": section, "tasks": executor.get("tasks", 1)}
    spec = InputSpec(**(section.get("input") or {}))
    if spec.paths is None:
        from iclx.data.corpus import build_source

        out["data"] = {k: v for k, v in _plain(cfg.data).items() if k not in ("order", "validation")}
        out["fingerprint"] = build_source(cfg.data).fingerprint()
    else:
        out["fingerprint"] = fingerprint(input_files(spec))
    return out


def build_curated(run: Any, folder: Path) -> None:
    """The ``curate`` artifact: ``curated/<rank>.jsonl.gz``, ``report.json``, ``dropped/``,
    ``near_threshold/``, ``stats/`` (datatrove's) and ``work/logs/`` (its task logs)."""
    require_extra()
    from iclx.curate.blocks import AuditSettings, InputReader, ShardReader, ShardWriter, SourceReader, StepBlock, TapBlock
    from iclx.curate.inputs import input_files
    from iclx.curate.report import finalize
    from iclx.curate.steps.base import DocStep, Stage, StepContext

    cfg = run.cfg
    pipeline = build("curate", cfg.curate, key="curate", exclude=("executor",))
    executor = build("curate_executor", cfg.curate.get("executor") or {"name": "local"}, key="curate.executor")
    steps = pipeline.steps()
    work = folder / "work"
    settings = AuditSettings(work, pipeline.seed, pipeline.samples, pipeline.near_threshold, pipeline.ledger)
    if pipeline.input.paths is None:
        data = {k: v for k, v in _plain(cfg.data).items() if k not in ("order", "validation")}
        head: list[Any] = [SourceReader(data, settings, progress="curate: read")]
    else:
        head = [InputReader(input_files(pipeline.input), pipeline.input.text_field, settings, progress="curate: read")]
    stages: list[Stage] = []
    for label, step in steps:
        context = StepContext(label=label, folder=work / "steps" / label, tasks=executor.tasks, seed=pipeline.seed)
        if isinstance(step, DocStep):
            head.append(StepBlock(label, step, context, settings))
            continue
        context.shards = work / "shards" / label
        stages.append(Stage(f"{label}.input", [*head, ShardWriter(context.shards), *step.collect(context)]))
        stages += [Stage(f"{label}.{s.name}", s.blocks, s.tasks) for s in step.between(context)]
        applied = step.apply(context)
        head = [ShardReader(context.shards, progress=f"curate: {label}")]
        head.append(StepBlock(label, applied, context, settings) if isinstance(applied, DocStep)
                    else TapBlock(label, applied, step.reason, settings))
    stages.append(Stage("output", [*head, ShardWriter(folder / "curated")]))
    log.info("curate: %d steps (%s) in %d datatrove passes on the %s executor, %d task(s)", len(steps),
             ", ".join(label for label, _ in steps), len(stages), executor.name, executor.tasks)
    start = time.perf_counter()
    executor.run(stages, work)
    report = finalize(folder, ["read", *[label for label, _ in steps]], {label: step.name for label, step in steps},
                      seconds=time.perf_counter() - start)
    shutil.rmtree(work / "shards", ignore_errors=True)  # intermediate passes: the artifact keeps the result
    if report["documents"] == 0:
        raise DataError("curate: no document survived the curation (see the steps' dropped/ samples in "
                        f"{folder.with_name(folder.name.removesuffix('.partial'))}); loosen a threshold or turn a step off")


def curated_documents(folder: Path) -> Iterator[Document]:
    """The curated corpus, shard by shard."""
    for path in sorted((folder / "curated").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                meta = {k: v for k, v in (record.get("metadata") or {}).items() if isinstance(v, (str, int, float, bool))}
                yield Document(text=record["text"], id=record["id"], meta=meta)


def heldout_validation(cfg: Any) -> list[Document] | None:
    """The held-out documents of a ``decontaminate`` step with ``validation: true``, else None."""
    from iclx.curate.steps.decontaminate import Decontaminate, heldout_texts

    pipeline = build("curate", cfg.curate, key="curate", exclude=("executor",))
    for label, step in pipeline.steps():
        if isinstance(step, Decontaminate) and step.validation:
            texts = heldout_texts(step.paths, step.text_field, step.bundled)
            return [Document(text=t, id=f"heldout/{i}", meta={"source": label}) for i, t in enumerate(texts)]
    return None


def load_curated_corpus(run: Any) -> Any:
    """What tokenize and pack read when curating: the curated documents, split by ``data.validation``."""
    from iclx.data.corpus import Corpus, split_documents, validation_settings

    folder = run.lineage.get("curate")
    docs = [d for d in curated_documents(folder) if d.text.strip()]
    if not docs:
        raise DataError(f"curate: the curated corpus {folder} is empty")
    heldout = heldout_validation(run.cfg)
    if heldout is not None:  # a decontaminate step's held-out text is the validation split
        train, val = docs, heldout
    else:
        fraction, seed = validation_settings(run.cfg.get("data") or {})
        train, val = split_documents(docs, fraction, seed)
    log.info("corpus: %d curated documents (%d train, %d validation) from %s", len(docs), len(train), len(val), folder)
    return Corpus(train=train, val=val)
