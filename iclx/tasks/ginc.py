"""``ginc``: ICL prompts from the HMMs of the GINC pre-training corpus (Xie et al. 2021).

The language comes from ``cfg.data`` (it must be ``data=ginc``), so prompts use the same concepts,
entities and vocabulary the model was pre-trained on. An example is ``example_length`` words:
x = all but the last, y = the last; demonstrations show the sampled y, a query is scored against
the Bayes-optimal next word under its concept (the language: ``iclx.ginc``). The label set is every
word the HMMs can emit, delimiter included: the prediction is the model's most likely of them.

``split``: ``id`` concepts (seen in pre-training) or ``ood`` ones (held out). ``pool``:

- ``matched`` (the paper's prompts): a query's demonstrations come from examples of its own
  concept and start property; there are ``pool_per_group`` such examples per (concept, start
  property) group, and the selector picks among them;
- ``mixed``: one pool of ``pool_size`` examples of every concept of the split, so which
  demonstrations a selector picks decides whether the prompt shows the query's concept at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from iclx.errors import ConfigError
from iclx.ginc import DELIMITER, GincLanguage, Split, ginc_language, posterior_predictive
from iclx.registry import register
from iclx.tasks.base import Task
from iclx.tasks.example import Example
from iclx.tasks.template import Template

GROUP_KEY = "group"  # Example.meta key: demonstrations of a matched query share its value

# example streams of ginc_examples(seed=...), kept apart from the corpus's own seeds
_QUERY_STREAM, _POOL_STREAM = 1_000, 2_000


@register("task", "ginc")
def ginc(
    data: Mapping[str, Any],
    split: Literal["id", "ood"] = "id",
    example_length: int = 5,
    n_queries: int = 500,
    pool: Literal["matched", "mixed"] = "matched",
    pool_per_group: int = 64,
    pool_size: int = 2000,
    seed: int = 0,
) -> Task:
    """``data`` is the run's ``cfg.data`` (given by iclx, not the task config)."""
    language = ginc_language(data)
    if n_queries < 1:
        raise ConfigError(f"task.n_queries must be at least 1, got {n_queries}")
    queries = ginc_examples(language, n_queries, example_length, split=split, seed=seed + _QUERY_STREAM)
    for i, query in enumerate(queries):
        query.id = f"ginc-query-{split}-{i}"
    if pool == "mixed":
        demonstrations = ginc_examples(language, pool_size, example_length, split=split, seed=seed + _POOL_STREAM)
        for i, example in enumerate(demonstrations):
            example.id = f"ginc-pool-{split}-{i}"
    else:
        demonstrations = []
        for concept in language.concepts(split):
            for prop in range(1, language.n_properties):
                group = ginc_examples(
                    language, pool_per_group, example_length, split=split, seed=seed + _POOL_STREAM + concept * 100 + prop,
                    concept=concept, start_property=prop,
                )
                for i, example in enumerate(group):
                    example.id = f"ginc-pool-{split}-c{concept}-p{prop}-{i}"
                demonstrations += group
        for example in demonstrations + queries:
            example.meta[GROUP_KEY] = group_of(example)
    return Task(
        name=f"ginc-{split}",
        pool=demonstrations,
        queries=queries,
        labels=[language.symbols[i] for i in sorted(set(language.emission.flat))],
        template=Template(),
        group_key=GROUP_KEY if pool == "matched" else None,
        exclude_query_twins=False,  # short random walks repeat: an equal x is no leak of y
        # the Bayes posterior is that of the matched prompt process (one concept and start property per prompt)
        reference=BayesReference(language, split) if pool == "matched" else None,
    )


def group_of(example: Example) -> str:
    return f"c{example.meta['concept']}-p{example.meta['start_property']}"


@dataclass
class GincPrompt:
    demonstrations: list[Example]
    query: Example
    concept: int
    start_property: int

    def text(self) -> str:
        """``x1 y1 / x2 y2 / ... / x_query``: the model's next word is the prediction."""
        shown = [f"{d.input} {d.output}" for d in self.demonstrations] + [self.query.input]
        return f" {DELIMITER} ".join(shown)


def ginc_examples(
    language: GincLanguage,
    n: int,
    example_length: int,
    *,
    split: Split = "id",
    seed: int = 0,
    concept: int | None = None,
    start_property: int | None = None,
) -> list[Example]:
    """``n`` ICL examples of ``example_length`` words (x = the first length-1, y = the last).

    Each draws its concept from ``split`` and its start property from 1..n_properties-1 unless
    given. ``Example.output`` is the sampled y (show it in demonstrations), ``Example.label``
    the Bayes-optimal y (score queries against it); ``meta`` holds concept, start_property,
    split.
    """
    tokens, labels, concepts, props = language.example_tokens(
        n, example_length, split=split, seed=seed, concept=concept, start_property=start_property
    )
    return [
        Example(
            id=f"ginc-{split}-{seed}-{i}",
            input=language.words(row[:-1]),
            output=language.symbols[row[-1]],
            label=language.symbols[label],
            meta={"concept": int(c), "start_property": int(p), "split": split},
        )
        for i, (row, label, c, p) in enumerate(zip(tokens, labels, concepts, props))
    ]


def ginc_prompts(
    language: GincLanguage, n: int, k: int, example_length: int, *, split: Split = "id", seed: int = 0
) -> list[GincPrompt]:
    """``n`` prompts of ``k`` demonstrations + 1 query, each of one concept and start property.

    This follows the paper's ``ID_sample`` prompts; for out-of-distribution prompts we use the same
    procedure with the held-out concepts (the reference code instead draws random property patterns
    and labels them with a held-out HMM).
    """
    rng = language.prompt_rng(seed, k)
    out = []
    for i in range(n):
        concept = int(rng.choice(language.concepts(split)))
        prop = int(rng.integers(1, language.n_properties))
        group = ginc_examples(language, k + 1, example_length, split=split, seed=int(rng.integers(2**62)),
                              concept=concept, start_property=prop)
        for j, example in enumerate(group):
            example.id = f"ginc-{split}-{seed}-k{k}-{i}-{j}"
        out.append(GincPrompt(demonstrations=group[:k], query=group[k], concept=concept, start_property=prop))
    return out


class BayesReference:
    """The Bayes-optimal predictor of a GINC prompt (Xie et al. 2021), for comparison with the model.

    Its posterior is that of the process that generates matched prompts: a concept uniform over the
    split's concepts and a start property uniform over 1..n_properties-1, shared by the prompt's
    demonstrations and its query (``GincLanguage.prompt_predictive``). On the very prompts the model
    read (the demonstrations that reached them), per k it gives ``bayes_accuracy`` (its argmax
    against the query's label), ``bayes_agreement`` (the model's prediction equals it) and
    ``bayes_kl`` (KL from the Bayes predictive over the labels to the model's label distribution,
    the softmax of its label scores; nats).
    """

    def __init__(self, language: GincLanguage, split: Split):
        self.language, self.split = language, split
        self.word_id = {word: i for i, word in enumerate(language.symbols)}
        self._example_ll: dict[str, np.ndarray] = {}  # example id -> log P(example | h) over hypotheses
        self._query: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # query id -> (log P(x | h), P(word | x, h))

    def ids(self, text: str) -> list[int]:
        return [self.word_id[w] for w in text.split()]

    def _log_likelihoods(self, examples: Sequence[Example]) -> np.ndarray:
        missing = [e for e in examples if e.id not in self._example_ll]
        if missing:
            tokens = np.array([self.ids(e.input) + self.ids(e.output) for e in missing])
            for e, column in zip(missing, self.language.example_log_likelihoods(tokens, self.split).T):
                self._example_ll[e.id] = column
        if not examples:
            return np.zeros((0, len(self.language.hypotheses(self.split))))
        return np.stack([self._example_ll[e.id] for e in examples])

    def predictive(self, queries: Sequence[Example], demonstrations: Sequence[Sequence[Example]]) -> np.ndarray:
        """P(next word | prompt) (queries, vocabulary) for each query after its demonstrations."""
        missing = [q for q in queries if q.id not in self._query]
        if missing:  # once per query: every k and every selector reuses it
            query_ll, words = self.language.query_predictives(np.array([self.ids(q.input) for q in missing]), self.split)
            for i, q in enumerate(missing):
                self._query[q.id] = (query_ll[:, i], words[:, i])
        out = np.empty((len(queries), len(self.language.symbols)))
        for i, (query, demos) in enumerate(zip(queries, demonstrations)):
            query_ll, words = self._query[query.id]
            out[i] = posterior_predictive(query_ll + self._log_likelihoods(demos).sum(axis=0), words)[0]
        return out

    def metrics(self, queries: Sequence[Example], demonstrations: Sequence[Sequence[Example]], predictions: Sequence[str],
                scores: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
        bayes = self.predictive(queries, demonstrations)[:, [self.word_id[label] for label in labels]]
        bayes /= bayes.sum(axis=1, keepdims=True)
        choice = [labels[i] for i in bayes.argmax(axis=1)]
        model = np.exp(scores - scores.max(axis=1, keepdims=True))
        model /= model.sum(axis=1, keepdims=True)
        kl = np.sum(np.where(bayes > 0, bayes * (np.log(np.maximum(bayes, 1e-300)) - np.log(np.maximum(model, 1e-300))), 0), axis=1)
        return {
            "bayes_accuracy": float(np.mean([c == q.label for c, q in zip(choice, queries)])),
            "bayes_agreement": float(np.mean([c == p for c, p in zip(choice, predictions)])),
            "bayes_kl": float(kl.mean()),
        }
