"""``extract``: HTML -> main text with trafilatura, through datatrove's Trafilatura step.

Boilerplate, navigation, cookie banners and comments are left out (trafilatura's main-text
extraction, ``favour_precision``); the page's encoding was detected when it was read. Each page is
extracted in datatrove's sandbox process: a page that makes trafilatura crash, hang past
``timeout`` seconds or run out of memory is dropped with reason ``error`` and the next page goes on.
A page with no main text is dropped as ``no_main_text``. Documents that are not HTML (plain text
records of a JSONL input, ``format: text``) pass unchanged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field

from iclx.curate.steps.base import DocStep, StepContext
from iclx.registry import register

HTML_START = re.compile(r"^\s*(<!doctype|<html|<head|<body|<\?xml|<meta|<div|<p[\s>])", re.I)


def sandbox(timeout: float) -> Any:
    """datatrove's extractor sandbox, whose process ends quietly when it is stopped (SIGTERM)."""
    from datatrove.pipeline.extractors.base import ExtractorSandbox

    class Sandbox(ExtractorSandbox):
        def _worker(self, conn: Any, extract_fn: Any) -> None:
            import signal

            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not iclx's handler, inherited by the fork
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
            super()._worker(conn, extract_fn)

    return Sandbox(timeout=timeout, warmup_text="")


def looks_like_html(doc: Any) -> bool:
    fmt = doc.metadata.get("format")
    if fmt in ("html", "text"):
        return fmt == "html"
    return bool(HTML_START.match(doc.text[:2000]))


@register("curate_step", "extract")
class Extract(DocStep):
    def __init__(
        self,
        timeout: Annotated[float, Field(gt=0)] = 5.0,
        favour_precision: bool = True,
        deduplicate: bool = True,  # trafilatura's own removal of repeated segments within a page
        min_chars: Annotated[int, Field(ge=0)] = 1,  # shorter extractions count as no main text
    ):
        self.timeout, self.favour_precision, self.deduplicate, self.min_chars = timeout, favour_precision, deduplicate, min_chars
        self._sandbox: Any = None

    def setup(self, context: StepContext) -> None:
        import logging

        from datatrove.pipeline.extractors import Trafilatura

        logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # "empty HTML tree": counted as no_main_text
        self._extractor = Trafilatura(favour_precision=self.favour_precision, timeout=self.timeout, deduplicate=self.deduplicate)
        self._sandbox = sandbox(self.timeout)

    def judge(self, doc: Any) -> str | None:
        if not looks_like_html(doc):
            return None
        text = self._sandbox.process_document(doc.text, self._extractor.extract)  # errors: reason `error`
        if not text or len(text.strip()) < self.min_chars:
            return "no_main_text"
        doc.text = text
        doc.metadata["format"] = "text"
        return None

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.__exit__(None, None, None)
            self._sandbox = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_sandbox", "_extractor")} | {"_sandbox": None}
