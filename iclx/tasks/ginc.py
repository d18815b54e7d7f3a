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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from iclx.errors import ConfigError
from iclx.ginc import DELIMITER, GincLanguage, Split, ginc_language
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
