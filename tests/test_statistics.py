"""Bootstrap intervals cover the truth at their nominal rate; paired tests find real differences."""

from __future__ import annotations

import numpy as np
import pytest

from iclx.statistics import bootstrap_interval, paired_comparison


def test_accuracy_intervals_cover_the_true_accuracy_93_to_97_percent_of_the_time():
    """1,000 synthetic evaluations of 300 queries with true accuracy 0.62: the 95% interval of each
    contains 0.62 in 93-97% of them."""
    rng = np.random.default_rng(0)
    covered = 0
    for draw in range(1000):
        correct = rng.random(300) < 0.62
        interval = bootstrap_interval(correct, resamples=500, seed=draw)
        covered += interval.low <= 0.62 <= interval.high
    assert 930 <= covered <= 970, covered


def test_interval_of_a_mean_and_of_another_statistic():
    values = np.r_[np.ones(70), np.zeros(30)]
    interval = bootstrap_interval(values)
    assert interval.estimate == 0.7 and 0.6 < interval.low < 0.7 < interval.high < 0.8
    assert str(interval) == f"0.700 [{interval.low:.3f}, {interval.high:.3f}]"
    median = bootstrap_interval(np.arange(101.0), statistic=lambda a: np.median(a, axis=-1))
    assert median.estimate == 50 and median.low < 50 < median.high
    assert bootstrap_interval(values, seed=1) == bootstrap_interval(values, seed=1)  # seeded


def test_paired_comparison_sees_a_real_gain_and_no_gain_where_there_is_none():
    rng = np.random.default_rng(1)
    base = (rng.random(400) < 0.5).astype(float)
    better = np.where(rng.random(400) < 0.15, 1.0, base)  # fixes 15% of the queries
    gain = paired_comparison(better, base)
    assert gain.difference.low > 0 and gain.p_value < 0.01 and gain.n == 400
    same = paired_comparison(base[rng.permutation(400)], base)  # the same accuracy, shuffled: no real gain
    assert same.difference.low < 0 < same.difference.high and same.p_value > 0.05


@pytest.mark.parametrize("bad", [np.array([]), np.zeros((2, 2))])
def test_bad_input_is_refused(bad):
    with pytest.raises(ValueError, match="non-empty 1-d array"):
        bootstrap_interval(bad)
    with pytest.raises(ValueError, match="two 1-d arrays"):
        paired_comparison(np.zeros(3), np.zeros(4))
