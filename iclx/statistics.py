"""Uncertainty of ICL results: bootstrap intervals over queries, and paired comparisons.

An accuracy measured on a few hundred queries moves by several points between query sets, so a
table of accuracies per k and per selector needs an interval per cell, and a claim that selector A
beats selector B needs a test on the same queries (paired: both scored every query). Both resample
the queries with replacement (Efron's percentile bootstrap); every function is seeded, so a table
is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_interval(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The statistic of ``values`` (per-query results, e.g. 0/1 correct) and its percentile
    bootstrap interval. ``statistic`` maps a (resamples, n) array to (resamples,) values; the
    default is the mean (accuracy)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"bootstrap_interval needs a non-empty 1-d array of per-query values, got shape {values.shape}")
    statistic = statistic or (lambda a: a.mean(axis=-1))
    estimate = float(statistic(values[None, :])[0])
    rng = np.random.default_rng(seed)
    samples = statistic(values[rng.integers(0, len(values), size=(resamples, len(values)))])
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high))


@dataclass(frozen=True)
class PairedComparison:
    difference: Interval  # mean of a - b over the same queries, with its interval
    p_value: float  # two-sided: how often a difference this large appears when a and b are exchangeable
    n: int

    def __str__(self) -> str:
        return f"{self.difference} (p={self.p_value:.3g}, n={self.n})"


def paired_comparison(
    a: np.ndarray, b: np.ndarray, *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> PairedComparison:
    """Method a vs method b on the same queries (a[i], b[i]: their results on query i).

    The interval is the bootstrap of the mean difference; the p-value is the paired permutation
    (sign-flip) test of no difference, Monte Carlo with ``resamples`` flips."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_comparison needs two 1-d arrays over the same queries, got {a.shape} and {b.shape}")
    diff = a - b
    interval = bootstrap_interval(diff, confidence=confidence, resamples=resamples, seed=seed)
    rng = np.random.default_rng([seed, 1])
    signs = rng.choice([-1.0, 1.0], size=(resamples, len(diff)))
    flipped = np.abs((signs * diff).mean(axis=1))
    p_value = (1 + np.count_nonzero(flipped >= abs(diff.mean()) - 1e-12)) / (resamples + 1)
    return PairedComparison(interval, float(p_value), len(diff))
