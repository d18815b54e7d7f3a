"""``random``: k demonstrations drawn uniformly from the pool, independently for each query.

Each query's draw is seeded by the run's seed and the query's id, so it does not depend on which
other queries are in the batch or in what order they come. The draw is the sequence of distinct
pool indices in a fixed stream of uniform indices, so the first k of a larger draw are the draw
for k: the k=4 prompt is a prefix of the k=8 one, whatever the ``shots`` list holds.
"""

from __future__ import annotations

import zlib

import numpy as np

from iclx.registry import register
from iclx.selectors.base import Selector
from iclx.tasks.example import Example

STREAM_CHUNK = 64  # indices drawn at a time: part of the draw's definition, never derived from k


@register("selector", "random")
class RandomSelector(Selector):
    def _fit(self) -> None:
        pass

    def _select(self, queries: list[Example], k: int) -> list[list[int]]:
        return [self.draw(query, k) for query in queries]

    def draw(self, query: Example, k: int) -> list[int]:
        """``k`` distinct pool indices (never the query's own), in the order a seeded stream of
        uniform indices first shows them; the stream's chunks do not depend on ``k``."""
        rng = np.random.default_rng([self.context.seed, zlib.crc32(query.id.encode())])
        own, seen, order = self.own_index(query), set(), []
        while len(order) < k:
            for index in rng.integers(0, len(self.pool), size=STREAM_CHUNK).tolist():
                if index != own and index not in seen:
                    seen.add(index)
                    order.append(index)
        return order[:k]
