"""``random``: k demonstrations drawn uniformly from the pool, independently for each query.

Each query's draw is seeded by the run's seed and the query's id, so it does not depend on which
other queries are in the batch or in what order they come.
"""

from __future__ import annotations

import zlib

import numpy as np

from iclx.registry import register
from iclx.selectors.base import Selector
from iclx.tasks.example import Example


@register("selector", "random")
class RandomSelector(Selector):
    def _fit(self) -> None:
        pass

    def _select(self, queries: list[Example], k: int) -> list[list[int]]:
        chosen = []
        for query in queries:
            rng = np.random.default_rng([self.context.seed, zlib.crc32(query.id.encode())])
            own = self.own_index(query)
            draw = rng.choice(len(self.pool) - (own >= 0), size=k, replace=False)
            if own >= 0:  # draw from the pool without the query: shift indices past its slot
                draw = draw + (draw >= own)
            chosen.append(draw.tolist())
        return chosen
