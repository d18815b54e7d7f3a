"""Model-free selection quality: how often the chosen demonstrations carry the query's label.

For classification, a demonstration with the query's own label is the one a similarity-based
selector hopes to find (KATE's premise); random choice scores the label's share of the pool.
The evaluate stage logs this for every selector, next to the accuracy the model reaches with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from iclx.tasks.example import Example


def label_agreement(pool: Sequence[Example], queries: Sequence[Example], chosen: Sequence[Sequence[int]]) -> float | None:
    """Share of all chosen demonstrations whose label equals their query's label.

    ``chosen[i]`` are pool indices for ``queries[i]`` (a selector's output). None when there is
    nothing to measure: open-ended examples (label None) or no demonstrations at all.
    """
    agree = total = 0
    for query, ids in zip(queries, chosen):
        if query.label is None:
            continue
        for i in ids:
            if pool[i].label is None:
                continue
            total += 1
            agree += pool[i].label == query.label
    return agree / total if total else None
