"""``bundled``: the small real corpus shipped in ``iclx/resources/corpus`` (see its README).

WikiText-2 articles (a document per article) and Tiny Shakespeare (a document per speaker's
turn): the default corpus for pre-training on text without downloading anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from iclx.data.corpus import CorpusSource
from iclx.data.document import Document
from iclx.data.text_files import TextFiles
from iclx.errors import ConfigError
from iclx.registry import register

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "corpus"
BundledName = Literal["wikitext2", "shakespeare"]

# name -> (file, how it splits into documents, the regex that starts a document)
PARTS: dict[str, tuple[str, str, str | None]] = {
    "wikitext2": ("wikitext2_sample.txt", "regex", r"^ = [^=].* = $"),  # one '=' each side: an article title
    "shakespeare": ("shakespeare_sample.txt", "blank_line", None),
}


@register("data", "bundled")
class Bundled(CorpusSource):
    def __init__(self, corpora: list[BundledName] = ["wikitext2", "shakespeare"]):  # noqa: B006 (read only)
        if not corpora:
            raise ConfigError(f"data.corpora is empty: choose from {', '.join(PARTS)}")
        self.corpora = list(corpora)

    def describe(self) -> str:
        return "bundled " + "+".join(self.corpora)

    def documents(self) -> Iterator[Document]:
        for name in self.corpora:
            file, split, boundary = PARTS[name]
            for doc in TextFiles(str(RESOURCES / file), split=split, boundary=boundary).documents():  # type: ignore[arg-type]
                doc.meta["source"] = name
                yield doc
