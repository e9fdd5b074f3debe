"""Runs of consecutive frames: when a per-frame state (eyes closed, mouth open) was on.

Shared by bench/blink_eval.py (how long natural blinks and speech keep a hold state on)
and tests/test_holds.py (the same measures on the labelled clips).
"""

from __future__ import annotations

import numpy as np


def closed_runs(t: np.ndarray, on: list[bool]) -> list[tuple[float, float]]:
    """(first, last) time of each run of consecutive frames that are on."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    last = 0.0
    for ti, o in zip(t, on):
        if o:
            start = float(ti) if start is None else start
            last = float(ti)
        elif start is not None:
            out.append((start, last))
            start = None
    if start is not None:
        out.append((start, last))
    return out
