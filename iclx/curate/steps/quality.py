"""``quality``: a classifier of reference-quality text, trained in the stage (the GPT-3 / Llama 3 recipe).

Positives are the reference text, by default the bundled WikiText-2 articles cut into ~``chunk``
character pieces (or your own ``reference`` files: .txt, one document per blank-line-separated
paragraph group, or .jsonl with a ``text`` field); negatives are a seeded sample of up to
``negatives`` documents as they reach this step (raw crawl). scikit-learn fits a logistic
regression on hashed word and word-bigram counts (``HashingVectorizer``, TF-IDF weighted); its
weights are stored as plain arrays (``model.npz``, nothing pickled). Every document then gets
P(reference) and is kept when it reaches ``threshold``; with ``pareto_alpha`` set, GPT-3's
sampling keeps a document when ``score > 1 - pareto(alpha)``, so some lower-scoring text stays.
Dropped: ``low_quality``.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from iclx.curate.steps.base import DocStep, PassStep, Stage, StepContext
from iclx.registry import register

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "corpus"
N_FEATURES = 2**18


def vectorizer() -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=N_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm=None, lowercase=True)


def reference_texts(paths: list[str], chunk: int) -> list[str]:
    """The positives: WikiText articles (default) or the given files, in ~``chunk``-character pieces."""
    texts: list[str] = []
    if not paths:
        wiki = (RESOURCES / "wikitext2_sample.txt").read_text(encoding="utf-8")
        texts = [t for t in re.split(r"(?m)^ = [^=].* = $", wiki) if t.strip()]
    for p in paths:
        path = Path(p).expanduser()
        if path.suffix == ".jsonl":
            texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            texts += [t for t in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if t.strip()]
    pieces = []
    for t in texts:
        paragraphs = [p for p in t.split("\n") if p.strip()]
        current = ""
        for para in paragraphs:
            current = f"{current}\n{para}" if current else para
            if len(current) >= chunk:
                pieces.append(current)
                current = ""
        if current:
            pieces.append(current)
    return pieces


class _Negatives:
    """Collect: a seeded reservoir sample of each task's documents, ``negatives/<rank>.jsonl``."""

    def __init__(self, folder: Path, size: int, seed: int):
        self.folder, self.size, self.seed = folder, size, seed

    def start(self, rank: int, world_size: int) -> dict[str, Any]:
        return {"rng": random.Random(self.seed * 7919 + rank), "sample": [], "seen": 0, "size": max(1, self.size // world_size)}

    def add(self, state: dict[str, Any], doc: Any) -> None:
        state["seen"] += 1
        if len(state["sample"]) < state["size"]:
            state["sample"].append(doc.text)
        else:
            j = state["rng"].randrange(state["seen"])
            if j < state["size"]:
                state["sample"][j] = doc.text

    def finish(self, state: dict[str, Any], rank: int) -> None:
        (self.folder / "negatives").mkdir(parents=True, exist_ok=True)
        (self.folder / "negatives" / f"{rank:05d}.jsonl").write_text("".join(json.dumps(t) + "\n" for t in state["sample"]))


class _Train:
    """Between: fit the classifier, write ``model.npz`` and ``training.json`` (sizes, held-out accuracy)."""

    def __init__(self, folder: Path, reference: list[str], chunk: int, seed: int, c: float):
        self.folder, self.reference, self.chunk, self.seed, self.c = folder, reference, chunk, seed, c

    def __call__(self, rank: int, world_size: int) -> None:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        negatives = [json.loads(line) for part in sorted((self.folder / "negatives").glob("*.jsonl"))
                     for line in part.read_text().splitlines() if line.strip()]
        positives = reference_texts(self.reference, self.chunk)
        texts, labels = positives + negatives, [1] * len(positives) + [0] * len(negatives)
        counts = vectorizer().transform(texts)
        tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        x = tfidf.transform(counts)
        x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.2, random_state=self.seed, stratify=labels)
        model = LogisticRegression(C=self.c, max_iter=1000, class_weight="balanced").fit(x_train, y_train)
        accuracy = float(model.score(x_test, y_test))
        model = LogisticRegression(C=self.c, max_iter=1000, class_weight="balanced").fit(x, labels)
        np.savez(self.folder / "model.npz", coef=model.coef_[0], intercept=model.intercept_, idf=tfidf.idf_)
        (self.folder / "training.json").write_text(json.dumps(
            {"positives": len(positives), "negatives": len(negatives), "held_out_accuracy": round(accuracy, 4)}))


class QualityJudge(DocStep):
    name = "quality"

    def __init__(self, folder: Path, threshold: float, pareto_alpha: float | None, seed: int):
        self.folder, self.threshold, self.pareto_alpha, self.seed = folder, threshold, pareto_alpha, seed
        self._model: Any = None

    def setup(self, context: Any) -> None:
        import numpy as np

        data = np.load(self.folder / "model.npz")
        self._model = (data["coef"], float(data["intercept"][0]), data["idf"], vectorizer())
        self._rng = np.random.default_rng(self.seed + (context.extra.get("rank", 0) if context else 0))

    def score(self, text: str) -> float:
        import numpy as np

        coef, intercept, idf, vec = self._model
        counts = vec.transform([text])
        counts.data = 1 + np.log(counts.data)  # sublinear tf, as in training
        x = counts.multiply(idf).tocsr()
        norm = np.sqrt(x.multiply(x).sum())
        z = float(x.dot(coef)[0]) / (norm or 1.0) + intercept
        return 1 / (1 + np.exp(-z))

    def judge(self, doc: Any) -> str | None:
        score = self.score(doc.text)
        doc.metadata["quality_score"] = round(score, 4)
        if self.pareto_alpha is not None:
            return None if score > 1 - self._rng.pareto(self.pareto_alpha) else "low_quality"
        return None if score >= self.threshold else "low_quality"

    def margin(self, doc: Any) -> float | None:
        score = doc.metadata.get("quality_score")
        return None if score is None else score - self.threshold

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}


@register("curate_step", "quality")
class Quality(PassStep):
    reason = "low_quality"
    requires = {"sklearn": "scikit-learn"}

    def __init__(
        self,
        threshold: Annotated[float, Field(ge=0, le=1)] = 0.5,
        pareto_alpha: Annotated[float, Field(gt=0)] | None = None,  # GPT-3 used 9
        reference: list[str] = [],  # noqa: B006 -- files of reference text; empty: the bundled WikiText
        negatives: Annotated[int, Field(ge=10)] = 2000,
        chunk: Annotated[int, Field(ge=100)] = 2000,
        c: Annotated[float, Field(gt=0)] = 1.0,  # inverse regularization strength
        seed: int = 0,
    ):
        self.threshold, self.pareto_alpha, self.reference = threshold, pareto_alpha, list(reference)
        self.negatives, self.chunk, self.c, self.seed = negatives, chunk, c, seed

    @classmethod
    def check_config(cls, values: dict[str, Any], key: str) -> None:
        from iclx.curate.extra import require_extra
        from iclx.errors import DataError

        require_extra("sklearn")
        for i, p in enumerate(values.get("reference") or []):
            if not Path(p).expanduser().is_file():
                raise DataError(f"{key}.reference[{i}]: {p} does not exist")

    def collect(self, context: StepContext) -> list[Any]:
        from iclx.curate.blocks import ConsumeBlock

        return [ConsumeBlock("quality negatives", _Negatives(context.folder, self.negatives, self.seed))]

    def between(self, context: StepContext) -> list[Stage]:
        from iclx.curate.blocks import TaskBlock

        train = _Train(context.folder, self.reference, self.chunk, self.seed, self.c)
        return [Stage("train", [TaskBlock("quality classifier", train)], 1)]

    def apply(self, context: StepContext) -> Any:
        return QualityJudge(context.folder, self.threshold, self.pareto_alpha, self.seed)
