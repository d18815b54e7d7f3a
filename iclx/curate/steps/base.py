"""What a curation step is: a registered component (kind ``curate_step``) listed under ``curate.steps``.

Two sorts, by what they need to see:

- :class:`DocStep` judges one document at a time (extraction, language, heuristics, logs,
  decontamination): ``judge(doc)`` returns None to keep it (possibly rewritten) or the reason it is
  dropped. Neighbouring document steps run in one datatrove pipeline, document by document.
- :class:`PassStep` needs every document first (deduplication, a reference token distribution, a
  trained classifier): it adds blocks that see the stream (signatures, counts), stages that run
  between (buckets, clusters, merges, training) and the block that applies its decision in the
  next pass.

Step modules import nothing heavy at the top (the registry imports them to check configs, with or
without the ``curate`` extra); datatrove and friends are imported where a step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CurateStep:
    """Base of every step; ``name`` is set by ``@register("curate_step", name)``."""

    name: str = ""
    # the datatrove blocks (or libraries) a step needs beyond datatrove: module -> pip name, for one line
    requires: dict[str, str] = {}

    def describe(self) -> str:
        return self.name


class DocStep(CurateStep):
    """A per-document step. Instances are pickled to the workers: heavy state is made in ``setup``."""

    def setup(self, context: StepContext) -> None:
        """Once per worker task, before the first document (load a model, open a sandbox)."""

    def judge(self, doc: Any) -> str | None:
        """None to keep ``doc`` (a datatrove Document; its text may be rewritten), else why it is dropped."""
        raise NotImplementedError

    def margin(self, doc: Any) -> float | None:
        """How far a kept document is from this step's threshold (small: nearly dropped); None: no score."""
        return None

    def close(self) -> None:
        """After the last document of a task."""


@dataclass
class StepContext:
    """Where a step keeps its files, and the run's settings it may need."""

    label: str  # the step's key under curate.steps
    folder: Path  # the step's own folder inside the artifact being built
    tasks: int  # the pipeline's number of shards
    seed: int
    shards: Path | None = None  # PassStep: the documents as they reach it, one file per shard
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stage:
    """A pipeline of datatrove blocks run by the executor over ``tasks`` shards (None: all of them)."""

    name: str
    blocks: list[Any]
    tasks: int | None = None


class PassStep(CurateStep):
    """A step that needs all documents before it decides (see the module docstring)."""

    reason: str = "dropped"  # the drop reason of a block-applied decision (``apply`` returning a block)

    def collect(self, context: StepContext) -> list[Any]:
        """Blocks that consume the documents as they reach this step (after they are written to
        ``context.shards``): signatures, counts. Nothing by default."""
        return []

    def between(self, context: StepContext) -> list[Stage]:
        """Stages run after ``collect`` and before ``apply`` (buckets, clusters, merges, training)."""
        return []

    def apply(self, context: StepContext) -> Any:
        """What decides, in the pass that reads ``context.shards`` again: a :class:`DocStep`, or a
        datatrove block that drops documents (counted with reason ``self.reason``)."""
        raise NotImplementedError
