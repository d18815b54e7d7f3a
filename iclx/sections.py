"""Typed schemas of the stage sections (``pretrain``, ``evaluate``, ``report``) and the top-level keys.

Their defaults live in one place, ``conf/config.yaml``: every run composes it, so the schemas
declare types and bounds only and every key is required (a test checks that the YAML sets each
one). ``check_sections(cfg)`` validates them before any stage runs; a stage reads its section,
validated and typed, with ``PretrainSection.from_config(cfg)`` or ``EvaluateSection.from_config(cfg)``
instead of parsing ``cfg.<section>`` itself. Errors are one line naming the key path
(``evaluate.shots[1] must be int, got str 'x'``) with a did-you-mean for unknown keys.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from omegaconf import OmegaConf
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from typing_extensions import Self

from iclx import registry, schema
from iclx.errors import ConfigError, did_you_mean

Count = Annotated[StrictInt, Field(ge=1)]  # steps, sizes, batches: at least one
Index = Annotated[StrictInt, Field(ge=0)]  # numbers of shots, workers, samples: zero is fine
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]  # what numpy (and Lightning's seeding) accept

S = TypeVar("S", bound="Section")


class Section(BaseModel):
    """A config section, validated. ``key`` is where it sits in the run config."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: ClassVar[str]

    @classmethod
    def from_config(cls, cfg: Any) -> Self:
        """``cfg.<key>`` validated (interpolations resolved), or a ConfigError naming the key."""
        return cls.validate_at(registry._plain(cfg.get(cls.key)) or {}, cls.key)

    @classmethod
    def validate_at(cls, values: Any, key: str) -> Self:
        if not isinstance(values, dict):
            raise ConfigError(f"{key} must be a mapping of keys, got {values!r}")
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise ConfigError(cls._error_line(schema.first_error(e), key, values)) from None

    @classmethod
    def _error_line(cls, error: dict[str, Any], key: str, values: dict[str, Any]) -> str:
        name = error["loc"][0] if error["loc"] else None
        inner = cls.model_fields[name].annotation if name in cls.model_fields else None
        if isinstance(inner, type) and issubclass(inner, Section) and len(error["loc"]) > 1:
            return inner._error_line({**error, "loc": error["loc"][1:]}, f"{key}.{name}", values[name])
        hints = typing.get_type_hints(cls, include_extras=True)
        return schema.error_line(error, key, key or "the run config", list(cls.model_fields), values, hints, noun="key")

    def check_references(self, cfg: Any) -> None:
        """Checks that need more than the section (names of components); none by default."""


class Samples(Section):
    key = "pretrain.samples"
    n: Index
    prompts: list[StrictStr]
    prompt_tokens: Count
    max_new_tokens: Count
    temperature: Annotated[StrictFloat, Field(ge=0)]  # 0 is greedy
    top_k: Count | None
    top_p: Annotated[StrictFloat, Field(gt=0, le=1)] | None


class PretrainSection(Section):
    key = "pretrain"
    seed: Seed
    batch_size: Count
    seq_len: Count | None
    max_steps: Count
    val_every: Count
    val_windows: Count | None
    checkpoint_every: Count
    resume: Literal["auto", "never"]
    tokenize_workers: Count
    num_workers: Index
    checkpoint: StrictStr | None
    samples: Samples


class EvaluateSection(Section):
    key = "evaluate"
    shots: Annotated[list[Index], Field(min_length=1)]
    selectors: Annotated[list[StrictStr | dict[str, Any]], Field(min_length=1)] | None
    variants: dict[str, dict[str, Any]] | None
    num_queries: Count | None
    normalization: Literal["sum", "mean"]
    calibration: StrictBool
    content_free: list[StrictStr]
    batch_size: Count
    max_new_tokens: Count
    prompt_start: Literal["eos", "none"]
    device: StrictStr
    save_prompts: StrictBool
    save_content_free: StrictBool

    @property
    def sorted_shots(self) -> list[int]:
        """The numbers of demonstrations to evaluate, each once, smallest first."""
        return sorted(set(self.shots))

    def scoring_settings(self) -> Any:
        """The ``iclx.tasks.icl.ScoringSettings`` these keys configure."""
        from iclx.tasks.icl import ScoringSettings

        return ScoringSettings(**{f: getattr(self, f) for f in ScoringSettings.__dataclass_fields__})

    def check_selector_choice(self, overrides: Sequence[str]) -> None:
        """A selector chosen on the command line (``selector=bm25``) is evaluated, or the run stops:
        a preset's ``evaluate.selectors`` list would otherwise silently evaluate others instead."""
        chosen = [o.split("=", 1)[1] for o in overrides if re.fullmatch(r"\+{0,2}selector=[^=]+", o)]
        if not chosen or self.selectors is None:
            return
        listed = [item if isinstance(item, str) else str(item.get("name")) for item in self.selectors]
        if chosen[-1] not in listed:
            raise ConfigError(
                f"selector={chosen[-1]} is not evaluated: evaluate.selectors=[{', '.join(listed)}] decides which selectors run; "
                f"set evaluate.selectors=null to evaluate {chosen[-1]} alone, or "
                f"evaluate.selectors=[{','.join([*listed, chosen[-1]])}]"
            )

    def check_references(self, cfg: Any) -> None:
        known = registry.known("selector")
        for i, item in enumerate(self.selectors or []):
            where = f"evaluate.selectors[{i}]"
            if isinstance(item, str) and item not in known:
                raise ConfigError(f"{where}: unknown selector '{item}'. Known: {', '.join(known)}{did_you_mean(item, known)}")
            if isinstance(item, dict):
                registry.check("selector", item, key=where)
        task = registry._plain(cfg.get("task"))
        for name, overrides in (self.variants or {}).items():
            if task is not None:  # each variant is the task with its keys changed
                registry.check("task", OmegaConf.merge(task, overrides), key=f"evaluate.variants.{name}")


class ReportSection(Section):
    """What a multirun's summary plot shows (``iclx.sweep_summary``)."""

    key = "report"
    metric: StrictStr | None
    curve: StrictStr | list[StrictStr] | None
    by: list[StrictStr] | None


class Paths(Section):
    key = "paths"
    cache_dir: StrictStr


class TopLevel(Section):
    """The run's own keys; the groups' sections (``model``, ``trainer``, ...) are checked elsewhere."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    key = ""
    name: StrictStr
    sweep_name: StrictStr
    stages: list[StrictStr]
    seed: Seed
    threads: Count | None
    force: StrictBool
    plugins: list[StrictStr]
    paths: Paths

    @classmethod
    def from_config(cls, cfg: Any) -> TopLevel:
        values = {k: registry._plain(cfg.get(k)) for k in cls.model_fields if k in cfg}
        return cls.validate_at(values, "")


SECTIONS: tuple[type[Section], ...] = (PretrainSection, EvaluateSection, ReportSection)


def check_sections(cfg: Any) -> int:
    """Validate the top-level keys and each stage section present in ``cfg``; return how many."""
    TopLevel.from_config(cfg)
    checked = 1
    for section in SECTIONS:
        if cfg.get(section.key) is not None:
            section.from_config(cfg).check_references(cfg)
            checked += 1
    return checked


def check_choices(cfg: Any, overrides: Sequence[str]) -> None:
    """What the command line chose explicitly (``overrides``) is what runs."""
    if "evaluate" in TopLevel.from_config(cfg).stages and cfg.get("evaluate") is not None:
        EvaluateSection.from_config(cfg).check_selector_choice(overrides)
