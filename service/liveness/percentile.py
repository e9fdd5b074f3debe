"""Percentiles of the short windows of recent values the cue detectors keep as levels.

Why not np.percentile: on a window of a few dozen values it spends ~75 us in argument
handling per call, and the detectors ask for about six levels per analysed frame (the
open eyes twice, the closed mouth twice, the rest yaw twice): ~0.45 ms of a 6 ms frame
budget for a sort of 100 floats. Same arithmetic as numpy's default ("linear") method,
so the levels and every threshold calibrated on them stay bit for bit what they were
(tests/test_percentile.py compares the two).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The `q`-th percentile (0-100) of `values`, linearly interpolated as numpy's
    default; ValueError for no values."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("percentile of no values")
    quantile = q / 100
    # numpy's virtual index for the linear method and its lerp (which interpolates
    # from the nearer end), in its own order of operations
    index = (n - 1) * quantile
    below = min(math.floor(index), n - 1)
    above = min(below + 1, n - 1)
    gamma = index - below
    a, b = ordered[below], ordered[above]
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def median(values: Iterable[float]) -> float:
    """np.median of `values`: the middle value, or the mean of the middle two."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no values")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
