"""``decontaminate``: remove training documents that overlap held-out text (GPT-3's n-gram check).

Every word ``n``-gram (lower case, punctuation removed; GPT-3 used 13) of the held-out text is
hashed into a set; a document is dropped (``contaminated``) when at least ``min_matches`` of its
n-grams are in it, or ``min_fraction`` of them when that is set. The held-out text is ``paths``
(.txt files, or .jsonl with a ``text_field``), or the bundled WikiText-2 articles ``bundled`` names
by index, detokenized as ``data=web_sample`` shows them (the held-out text of
``experiment=curation_effect``). The count of a kept document's
matches is in its metadata (``heldout_ngrams``). With ``validation: true`` the held-out text is
also the corpus's validation split (``data.validation`` is then not used): runs that curate the
same crawl differently validate on the same clean text.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from iclx.curate.steps.base import DocStep, StepContext
from iclx.errors import ConfigError, DataError
from iclx.registry import register

WORD = re.compile(r"\w+")


def ngram_hashes(text: str, n: int) -> set[int]:
    words = WORD.findall(text.lower())
    return {int.from_bytes(hashlib.blake2b(" ".join(words[i:i + n]).encode(), digest_size=8).digest(), "little")
            for i in range(len(words) - n + 1)}


def heldout_texts(paths: list[str], text_field: str, bundled: list[int]) -> list[str]:
    texts = []
    if bundled:  # as the crawl of data=web_sample shows them: detokenized
        from iclx.curate.known_mix import wiki_articles
        from iclx.curate.sample import detokenize

        articles = wiki_articles()
        texts += [detokenize(articles[i]) for i in bundled]
    for p in paths:
        path = Path(p).expanduser()
        if path.suffix == ".jsonl":
            texts += [json.loads(line)[text_field] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            texts.append(path.read_text(encoding="utf-8"))
    return texts


@register("curate_step", "decontaminate")
class Decontaminate(DocStep):
    def __init__(
        self,
        paths: list[str] = [],  # noqa: B006 -- read only
        bundled: list[Annotated[int, Field(ge=0)]] = [],  # noqa: B006 -- indices of bundled WikiText-2 articles
        text_field: str = "text",
        n: Annotated[int, Field(ge=3)] = 13,
        min_matches: Annotated[int, Field(ge=1)] = 1,
        min_fraction: Annotated[float, Field(gt=0, le=1)] | None = None,
        validation: bool = False,
    ):
        self.paths, self.bundled, self.text_field, self.validation = list(paths), list(bundled), text_field, validation
        self.n, self.min_matches, self.min_fraction = n, min_matches, min_fraction
        self._heldout: set[int] | None = None

    @classmethod
    def check_config(cls, values: dict[str, Any], key: str) -> None:
        if not values.get("paths") and not values.get("bundled"):
            raise ConfigError(f"{key}: name the held-out text: paths=[...] or bundled=[article indices]")
        for i, p in enumerate(values.get("paths") or []):
            if not Path(p).expanduser().is_file():
                raise DataError(f"{key}.paths[{i}]: {p} does not exist")
        from iclx.curate.known_mix import wiki_articles

        n = len(wiki_articles())
        for i, index in enumerate(values.get("bundled") or []):
            if index >= n:
                raise ConfigError(f"{key}.bundled[{i}] must be < {n} (the bundled WikiText-2 articles), got {index}")

    def setup(self, context: StepContext) -> None:
        self._heldout = set()
        for text in heldout_texts(self.paths, self.text_field, self.bundled):
            self._heldout |= ngram_hashes(text, self.n)

    def judge(self, doc: Any) -> str | None:
        grams = ngram_hashes(doc.text, self.n)
        hits = len(grams & self._heldout) if self._heldout else 0
        doc.metadata["heldout_ngrams"] = hits
        if self.min_fraction is not None:
            return "contaminated" if grams and hits / len(grams) >= self.min_fraction else None
        return "contaminated" if hits >= self.min_matches else None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_heldout": None}
