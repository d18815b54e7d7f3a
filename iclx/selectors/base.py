"""The ``selector`` group: which pool examples become each query's demonstrations.

The contract every selector keeps (and the evaluate stage relies on):

    selector = build("selector", cfg.selector, key="selector")
    selector.fit(pool, SelectionContext(run=run, seed=run.seed))
    chosen = selector.select(queries, k)

- ``chosen[i]`` holds ``k`` distinct indices into ``pool`` for ``queries[i]``, best first by the
  selector's own criterion (most similar for knn, greedy pick order for mmr and dpp), so its first
  ``j`` entries are what the selector would choose for ``j`` shots, and a prompt that must shrink
  drops demonstrations from the end.
- A pool example whose ``id`` equals the query's is never chosen (pool and queries may be one split).
- The same pool, queries, config and seed give the same choices.
- ``k`` larger than the pool (minus the query itself) is a ConfigError, one line.

Selectors that need more than the pool get it from the context: the run (artifact cache for pool
embeddings and trained retrievers, loggers), the trainer settings, runtime arguments for embedders
(``lm``: model, tokenizer, model_key) and, for ``epr``, the language-model scorer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from iclx.errors import ConfigError, DataError
from iclx.tasks.example import Example


class DemonstrationScorer(Protocol):
    def __call__(self, query: Example, candidates: Sequence[Example]) -> np.ndarray:
        """S(e) = log p(query.output | e, query.input) under the LM, one float per candidate e."""


@dataclass
class SelectionContext:
    run: Any = None  # iclx.run.Run: artifact cache, loggers, trainer config; None in unit tests (no cache)
    seed: int = 0
    embedder_args: dict[str, Any] = field(default_factory=dict)  # runtime arguments of embedders ('lm')
    scorer: DemonstrationScorer | None = None  # the LM scorer 'epr' learns from
    scorer_key: str = ""  # names the scorer's LM (e.g. its checkpoint artifact key) in epr's cache key
    # the trainer group's settings for a selector that trains (epr): accelerator, precision, ...;
    # None takes the run's (cfg.trainer). Its max_steps is pre-training's, never a selector's.
    trainer: Mapping[str, Any] | None = None


class Selector(ABC):
    name = "selector"

    def fit(self, pool: Sequence[Example], context: SelectionContext | None = None) -> Selector:
        """Prepare to choose from ``pool`` (embed it, index it, train on it)."""
        pool = list(pool)
        if not pool:
            raise DataError("selector: the demonstration pool is empty")
        self.position: dict[str, int] = {}
        for i, example in enumerate(pool):
            if example.id in self.position:
                raise DataError(f"selector: pool example id '{example.id}' occurs twice (ids must be unique)")
            self.position[example.id] = i
        self.pool = pool
        self.context = context or SelectionContext()
        self._fit()
        return self

    def select(self, queries: Sequence[Example], k: int) -> list[list[int]]:
        """For each query, ``k`` distinct pool indices, best first (see the module doc)."""
        if not hasattr(self, "pool"):
            raise RuntimeError(f"selector '{self.name}': call fit(pool) before select()")
        queries = list(queries)
        if k < 0:
            raise ConfigError(f"selector '{self.name}': k must be >= 0, got {k}")
        if k == 0 or not queries:
            return [[] for _ in queries]
        in_pool = next((q for q in queries if q.id in self.position), None)
        available = len(self.pool) - (in_pool is not None)
        if k > available:
            itself = f", one of which is the query '{in_pool.id}' itself" if in_pool is not None else ""
            raise ConfigError(
                f"selector '{self.name}': cannot choose k={k} demonstrations from a pool of {len(self.pool)} examples{itself}"
            )
        chosen = self._select(queries, k)
        self._check(queries, chosen, k)
        return chosen

    def own_index(self, query: Example) -> int:
        """The pool index of ``query`` itself, or -1 when it is not in the pool."""
        return self.position.get(query.id, -1)

    @abstractmethod
    def _fit(self) -> None: ...

    @abstractmethod
    def _select(self, queries: list[Example], k: int) -> list[list[int]]: ...

    def _check(self, queries: list[Example], chosen: list[list[int]], k: int) -> None:
        # cheap, and it keeps a plugin selector from silently breaking the evaluate stage
        if len(chosen) != len(queries):
            raise RuntimeError(f"selector '{self.name}' returned {len(chosen)} lists for {len(queries)} queries")
        for query, ids in zip(queries, chosen):
            if len(ids) != k or len(set(ids)) != k or self.own_index(query) in ids:
                raise RuntimeError(f"selector '{self.name}' broke its contract for query '{query.id}': chose {ids}")


def first_k(ranked: np.ndarray, k: int, skip: int) -> np.ndarray:
    """The first ``k`` of ``ranked`` pool indices, leaving out ``skip`` and FAISS's -1 padding."""
    ranked = np.asarray(ranked)
    return ranked[(ranked != skip) & (ranked >= 0)][:k]
