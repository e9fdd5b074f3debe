"""The cue detectors' percentile and median give numpy's values bit for bit, so every
level and threshold calibrated with np.percentile stays what it was."""

from __future__ import annotations

import random

import numpy as np
import pytest

from service.liveness.percentile import median, percentile


def test_percentile_and_median_equal_numpys_on_random_windows():
    rng = random.Random(13)
    for _ in range(3000):
        values = [rng.random() * rng.choice([1.0, 0.3, 1000.0])
                  for _ in range(rng.randint(1, 120))]
        if rng.random() < 0.3:  # ties, as rounded ratios make
            values = [round(v, 2) for v in values]
        q = rng.choice([0.0, 5.0, 10.0, 50.0, 85.0, 100.0, rng.uniform(0, 100)])
        assert percentile(values, q) == float(np.percentile(values, q)), (values, q)
        assert median(values) == float(np.median(values)), values


def test_levels_of_a_window_in_any_order():
    window = [0.31, 0.29, 0.05, 0.30, 0.32]  # a blink's sample among open ones
    assert percentile(window, 85.0) == percentile(sorted(window), 85.0) == \
        float(np.percentile(window, 85.0))
    assert percentile(iter(window), 0.0) == 0.05
    assert percentile(window, 100.0) == 0.32
    assert median([3.0, 1.0]) == 2.0


def test_no_values_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 50.0)
    with pytest.raises(ValueError):
        median([])
