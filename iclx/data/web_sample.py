"""``web_sample``: a generated crawl to curate (``iclx.curate.sample.crawl``), for ``experiment=curation_effect``.

The bundled WikiText-2 articles and Shakespeare as web pages wrapped in site boilerplate (HTML:
curate them with ``curate`` to get text), the same page crawled twice, near copies, log dumps,
base64 blobs, tables of numbers and keyword spam. ``heldout`` names WikiText articles kept out as
clean evaluation text; ``contaminated`` pages of each of them are in the crawl anyway, for the
``decontaminate`` step to find. Each document's ``kind`` and ``relation`` are in its metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from pydantic import Field

from iclx.data.corpus import CorpusSource
from iclx.data.document import Document
from iclx.registry import register

Count = Annotated[int, Field(ge=0)]


@register("data", "web_sample")
class WebSample(CorpusSource):
    def __init__(
        self,
        heldout: list[Annotated[int, Field(ge=0, le=24)]] = [],  # noqa: B006 -- read only
        contaminated: Count = 2,
        copies: Count = 15,
        near_copies: Count = 15,
        logs: Count = 40,
        junk: Count = 10,
        paragraphs_per_page: Annotated[int, Field(ge=1)] = 6,
        seed: int = 0,
    ):
        self.settings = dict(heldout=tuple(heldout), contaminated=contaminated, copies=copies, near_copies=near_copies,
                             logs=logs, junk=junk, paragraphs_per_page=paragraphs_per_page, seed=seed)

    def describe(self) -> str:
        return "web_sample (generated crawl)"

    def documents(self) -> Iterator[Document]:
        from iclx.curate.sample import crawl

        for r in crawl(**self.settings):
            yield Document(text=r["text"], id=r["id"], meta={"format": r["format"], "kind": r["kind"], "relation": r["relation"]})
