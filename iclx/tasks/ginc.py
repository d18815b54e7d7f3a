"""``ginc``: ICL prompts from the HMMs of the GINC pre-training corpus (Xie et al. 2021).

The language comes from ``cfg.data`` (it must be ``data=ginc``), so prompts use the same concepts,
entities and vocabulary the model was pre-trained on. An example is ``example_length`` words:
x = all but the last, y = the last; demonstrations show the sampled y, a query is scored against
the Bayes-optimal next word under its concept (see ``iclx.data.ginc``). The label set is every
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
from typing import Any, Literal

from iclx.errors import ConfigError
from iclx.registry import register
from iclx.tasks.base import Task
from iclx.tasks.example import Example
from iclx.tasks.template import Template

GROUP_KEY = "group"  # Example.meta key: demonstrations of a matched query share its value

# example streams of GincLanguage.examples(seed=...), kept apart from the corpus's own seeds
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
    from iclx.data.ginc import ginc_language

    language = ginc_language(data)
    if n_queries < 1:
        raise ConfigError(f"task.n_queries must be at least 1, got {n_queries}")
    queries = language.examples(n_queries, example_length, split=split, seed=seed + _QUERY_STREAM)
    for i, query in enumerate(queries):
        query.id = f"ginc-query-{split}-{i}"
    if pool == "mixed":
        demonstrations = language.examples(pool_size, example_length, split=split, seed=seed + _POOL_STREAM)
        for i, example in enumerate(demonstrations):
            example.id = f"ginc-pool-{split}-{i}"
    else:
        demonstrations = []
        for concept in language.concepts(split):
            for prop in range(1, language.n_properties):
                group = language.examples(
                    pool_per_group, example_length, split=split, seed=seed + _POOL_STREAM + concept * 100 + prop,
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
    )


def group_of(example: Example) -> str:
    return f"c{example.meta['concept']}-p{example.meta['start_property']}"
