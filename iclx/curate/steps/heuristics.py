"""``heuristics``: datatrove's Gopher repetition and quality, C4 and FineWeb filters, as FineWeb ran them.

Each filter is a key: null turns it off, a mapping tunes it with that datatrove filter's own
parameters (checked against its signature before anything runs), e.g.
``curate.steps.heuristics.gopher_quality.min_doc_words=100``. They run in the order below; the
first that refuses a document drops it, with the filter and its reason (``gopher_quality:
gopher_short_doc``, ``c4:...``). C4's filter also removes lines (javascript, policy notices) from
the documents it keeps. ``language`` is the word tokenizer's language (spaCy's blank model, no
download).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any

from iclx.curate.extra import require_extra
from iclx.curate.steps.base import DocStep, StepContext
from iclx.registry import register
from iclx.schema import Fields, check_arguments

# key -> (module, class) of the datatrove filter, in the order they run
FILTERS = {
    "gopher_repetition": ("datatrove.pipeline.filters.gopher_repetition_filter", "GopherRepetitionFilter"),
    "gopher_quality": ("datatrove.pipeline.filters.gopher_quality_filter", "GopherQualityFilter"),
    "c4": ("datatrove.pipeline.filters.c4_filters", "C4QualityFilter"),
    "fineweb": ("datatrove.pipeline.filters.fineweb_quality_filter", "FineWebQualityFilter"),
}
RUNTIME = ("exclusion_writer", "language")  # set by iclx, never in a config


@dataclass(frozen=True)
class FilterKeys(Fields):
    """A datatrove filter's parameters, checked against its signature (imported only then)."""

    target: Any = None
    label: str = ""
    key: str = ""

    def check(self, value: Any, key: str, check_component: Any) -> None:
        require_extra()
        check_arguments(f"heuristics filter '{self.key}'", filter_class(self.key), dict(value), key=key,
                        runtime=list(RUNTIME), check_component=check_component)


def filter_class(key: str) -> Any:
    module, name = FILTERS[key]
    return getattr(importlib.import_module(module), name)


GopherRepetitionKeys = Annotated[dict[str, Any] | None, FilterKeys(key="gopher_repetition")]
GopherQualityKeys = Annotated[dict[str, Any] | None, FilterKeys(key="gopher_quality")]
C4Keys = Annotated[dict[str, Any] | None, FilterKeys(key="c4")]
FineWebKeys = Annotated[dict[str, Any] | None, FilterKeys(key="fineweb")]


@register("curate_step", "heuristics")
class Heuristics(DocStep):
    def __init__(
        self,
        gopher_repetition: GopherRepetitionKeys = {},  # noqa: B006 -- read only
        gopher_quality: GopherQualityKeys = {},  # noqa: B006
        c4: C4Keys = {"filter_no_terminal_punct": False},  # noqa: B006 -- as FineWeb ran it
        fineweb: FineWebKeys = {},  # noqa: B006
        language: str = "en",
    ):
        self.settings = {"gopher_repetition": gopher_repetition, "gopher_quality": gopher_quality, "c4": c4, "fineweb": fineweb}
        self.language = language
        self._filters: list[tuple[str, Any]] = []

    def setup(self, context: StepContext) -> None:
        self._filters = [(key, filter_class(key)(**kwargs, language=self.language))
                         for key, kwargs in self.settings.items() if kwargs is not None]

    def judge(self, doc: Any) -> str | None:
        for key, f in self._filters:
            result = f.filter(doc)
            keep, reason = result if isinstance(result, tuple) else (result, None)
            if not keep:
                return f"{key}:{reason}" if reason else key
        return None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_filters": []}
