"""``token_outliers``: documents whose token distribution is far from the corpus's (Llama 3's KL filter).

Tokens are lower-cased words and punctuation marks, a number as its shape (``<num3>``: three
digits) and a word mixing letters and digits as ``<alnum>``. A first pass counts the tokens of
every document that reaches this step; those in at least ``min_documents`` documents (at most the
``vocab_size`` most frequent) are the reference vocabulary, every other token is one ``<other>``
token, and the reference distribution q is the corpus's smoothed frequencies (``reference.json`` in
the step's folder of the artifact). Each document's own distribution p then gets its divergence
KL(p || q) in nats: a base64 blob is ``<alnum>`` and ``<other>`` tokens, keyword spam a few words
over and over, and both score far above prose. (A table of numbers scores like a short page when
the corpus holds many of them: the heuristics' Gopher alphabetic-word ratio catches those.)

A document with fewer than ``min_tokens`` tokens is kept (its distribution says little). The rest
are dropped when their KL reaches ``threshold`` or, with ``top_fraction`` set instead, when they
are among that fraction of the highest-scoring documents (a second pass computes the scores and
the cut). Dropped: ``kl_outlier``; kept documents near the cut are in ``near_threshold/``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from iclx.curate.steps.base import DocStep, PassStep, Stage, StepContext
from iclx.errors import ConfigError
from iclx.registry import register

TOKEN = re.compile(r"\w+|[^\w\s]")
DIGIT = re.compile(r"\d")
OTHER = "<other>"


def shape(word: str) -> str:
    if word.isdigit():
        return f"<num{min(len(word), 5)}>"
    if DIGIT.search(word) and not word.isdigit() and any(c.isalpha() for c in word):
        return "<alnum>"
    return word


def tokens(text: str) -> list[str]:
    return [shape(w) for w in TOKEN.findall(text.lower())]


def kl_divergence(counts: Counter, total: int, reference: dict[str, float], other: float) -> float:
    """KL(p || q) of a document's token counts against the reference (tokens outside it are ``<other>``)."""
    merged: Counter = Counter()
    for tok, c in counts.items():
        merged[tok if tok in reference else OTHER] += c
    kl = 0.0
    for tok, c in merged.items():
        p = c / total
        kl += p * math.log(p / (reference.get(tok, other) if tok != OTHER else other))
    return kl


class _Counts:
    """Collect: each task's token counts and document frequencies, ``counts/<rank>.json``."""

    def __init__(self, folder: Path):
        self.folder = folder

    def start(self, rank: int, world_size: int) -> tuple[Counter, Counter]:
        return Counter(), Counter()

    def add(self, state: tuple[Counter, Counter], doc: Any) -> None:
        toks = tokens(doc.text)
        state[0].update(toks)
        state[1].update(set(toks))

    def finish(self, state: tuple[Counter, Counter], rank: int) -> None:
        (self.folder / "counts").mkdir(parents=True, exist_ok=True)
        (self.folder / "counts" / f"{rank:05d}.json").write_text(json.dumps({"counts": state[0], "documents": state[1]}))


class _Reference:
    """Between: the tasks' counts merged into ``reference.json`` (vocabulary probabilities, ``<other>``'s)."""

    def __init__(self, folder: Path, vocab_size: int, min_documents: int, smoothing: float):
        self.folder, self.vocab_size, self.min_documents, self.smoothing = folder, vocab_size, min_documents, smoothing

    def __call__(self, rank: int, world_size: int) -> None:
        total: Counter = Counter()
        documents: Counter = Counter()
        for part in sorted((self.folder / "counts").glob("*.json")):
            data = json.loads(part.read_text())
            total.update(data["counts"])
            documents.update(data["documents"])
        n = sum(total.values())
        frequent = Counter({t: c for t, c in total.items() if documents[t] >= self.min_documents})
        vocab = dict(frequent.most_common(self.vocab_size))
        other_count = n - sum(vocab.values())
        denom = n + self.smoothing * (len(vocab) + 1)
        reference = {t: (c + self.smoothing) / denom for t, c in vocab.items()}
        other = (other_count + self.smoothing) / denom
        (self.folder / "reference.json").write_text(json.dumps(
            {"tokens": n, "vocabulary": len(vocab), "other": other, "probabilities": reference}))


class _Scores:
    """Between (top_fraction): every document's KL, ``scores/<rank>.json``."""

    def __init__(self, judge: TokenOutlierJudge):
        self.judge = judge

    def start(self, rank: int, world_size: int) -> list[float]:
        self.judge.setup(None)
        return []

    def add(self, state: list[float], doc: Any) -> None:
        score = self.judge.score(doc.text)
        if score is not None:
            state.append(score)

    def finish(self, state: list[float], rank: int) -> None:
        (self.judge.folder / "scores").mkdir(parents=True, exist_ok=True)
        (self.judge.folder / "scores" / f"{rank:05d}.json").write_text(json.dumps(state))


class _Cut:
    """Between (top_fraction): the KL above which the top fraction lies, ``threshold.json``."""

    def __init__(self, folder: Path, top_fraction: float):
        self.folder, self.top_fraction = folder, top_fraction

    def __call__(self, rank: int, world_size: int) -> None:
        scores = sorted(s for part in sorted((self.folder / "scores").glob("*.json")) for s in json.loads(part.read_text()))
        n_drop = round(self.top_fraction * len(scores))
        cut = scores[-n_drop] if n_drop else math.inf
        (self.folder / "threshold.json").write_text(json.dumps({"threshold": cut, "scored": len(scores), "dropped": n_drop}))


class TokenOutlierJudge(DocStep):
    """The per-document decision, with the reference (and cut) the passes before wrote."""

    name = "token_outliers"

    def __init__(self, folder: Path, threshold: float | None, min_tokens: int):
        self.folder, self.threshold, self.min_tokens = folder, threshold, min_tokens
        self._reference: dict[str, float] | None = None
        self._other = 0.0

    def setup(self, context: Any) -> None:
        data = json.loads((self.folder / "reference.json").read_text())
        self._reference, self._other = data["probabilities"], data["other"]
        if self.threshold is None:
            self.threshold = json.loads((self.folder / "threshold.json").read_text())["threshold"]

    def score(self, text: str) -> float | None:
        toks = tokens(text)
        if len(toks) < self.min_tokens:
            return None
        return kl_divergence(Counter(toks), len(toks), self._reference or {}, self._other)

    def judge(self, doc: Any) -> str | None:
        score = self.score(doc.text)
        if score is None:
            return None
        doc.metadata["token_kl"] = round(score, 4)
        return "kl_outlier" if score >= self.threshold else None

    def margin(self, doc: Any) -> float | None:
        score = doc.metadata.get("token_kl")
        return None if score is None or self.threshold is None or math.isinf(self.threshold) else self.threshold - score

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reference": None}


@register("curate_step", "token_outliers")
class TokenOutliers(PassStep):
    reason = "kl_outlier"

    def __init__(
        self,
        threshold: Annotated[float, Field(gt=0)] | None = 3.0,  # KL in nats at which a document is dropped
        top_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None,  # or: drop this fraction of the highest
        vocab_size: Annotated[int, Field(ge=10)] = 100000,
        min_documents: Annotated[int, Field(ge=1)] = 2,  # a token of fewer documents is <other>
        min_tokens: Annotated[int, Field(ge=1)] = 100,
        smoothing: Annotated[float, Field(gt=0)] = 0.5,
    ):
        self.threshold, self.top_fraction = threshold, top_fraction
        self.vocab_size, self.min_documents, self.min_tokens, self.smoothing = vocab_size, min_documents, min_tokens, smoothing

    @classmethod
    def check_config(cls, values: dict[str, Any], key: str) -> None:
        if (values.get("threshold") is None) == (values.get("top_fraction") is None):
            raise ConfigError(f"{key}: set exactly one of threshold and top_fraction (the other null)")

    def collect(self, context: StepContext) -> list[Any]:
        from iclx.curate.blocks import ConsumeBlock

        return [ConsumeBlock("token counts", _Counts(context.folder))]

    def between(self, context: StepContext) -> list[Stage]:
        from iclx.curate.blocks import ConsumeBlock, ShardReader, TaskBlock

        reference = _Reference(context.folder, self.vocab_size, self.min_documents, self.smoothing)
        stages = [Stage("reference", [TaskBlock("reference distribution", reference)], 1)]
        if self.top_fraction is not None:
            judge = TokenOutlierJudge(context.folder, math.inf, self.min_tokens)
            stages += [Stage("scores", [ShardReader(context.shards), ConsumeBlock("KL scores", _Scores(judge))]),
                       Stage("cut", [TaskBlock("top-fraction cut", _Cut(context.folder, self.top_fraction))], 1)]
        return stages

    def apply(self, context: StepContext) -> Any:
        return TokenOutlierJudge(context.folder, self.threshold if self.top_fraction is None else None, self.min_tokens)
