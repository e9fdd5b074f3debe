"""Mouth movement: open/close excursions of the inner lips above a closed-mouth baseline.

Why a baseline: a closed mouth reads ~0 on most faces, but some people rest with their
lips apart (MAR 0.1-0.15 throughout on three ZJU clips) and landmarks add a person-
specific offset. The baseline is a low percentile of the recent mouth aspect ratio, so
what counts is how far the lips open above the person's own resting state.

Why excursions with relative hysteresis: speech rarely closes the lips fully between
syllables. An excursion opens when the MAR rises `open_delta` above both the baseline
and the lowest point since the previous excursion, and ends when it falls back at
least `close_fraction` of the way down. Each syllable-sized movement is one event;
landmark jitter (a few hundredths) stays under `open_delta` (one excursion in all of
the 55 silent ZJU clips, none reaching `min_events`).

Two readings for the two uses: `moved` (at least `min_events` excursions: talking,
reading digits aloud) and `opened_wide` (one excursion of at least `wide_amplitude`: the
"open your mouth" challenge, which must also close again to count).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from service.config import Config


@dataclass(frozen=True)
class MouthParams:
    """Defaults calibrated with bench/blink_eval.py (see the Config fields mouth_*)."""

    baseline_window_s: float = 4.0
    baseline_percentile: float = 10.0
    open_delta: float = 0.08
    close_fraction: float = 0.5
    min_events: int = 2
    wide_amplitude: float = 0.3

    @classmethod
    def from_config(cls, config: Config) -> MouthParams:
        return cls(baseline_window_s=config.mouth_baseline_window_s,
                   baseline_percentile=config.mouth_baseline_percentile,
                   open_delta=config.mouth_open_delta,
                   close_fraction=config.mouth_close_fraction,
                   min_events=config.mouth_min_events,
                   wide_amplitude=config.mouth_wide_amplitude)


@dataclass(frozen=True)
class MouthEvent:
    """One open-close excursion: from the first sample seen open (`start_t`) to the first
    seen closing again (`end_t`), `amplitude` the peak MAR above the baseline."""

    start_t: float
    end_t: float
    amplitude: float


@dataclass
class _Excursion:
    start_t: float
    base: float
    peak: float


class MouthDetector:
    """Feed one mouth aspect ratio per analysed frame with `update`; it returns a
    MouthEvent on the sample where an excursion ends, else None."""

    def __init__(self, params: MouthParams = MouthParams()) -> None:
        self.params = params
        self.events: list[MouthEvent] = []  # every completed excursion, in order
        self._history: deque[tuple[float, float]] = deque()
        self._open: _Excursion | None = None
        # Lowest MAR since the last excursion ended: a new one must rise above it.
        self._trough = math.inf

    @property
    def moved(self) -> bool:
        """Enough excursions to call it mouth movement (speech, chewing, a challenge)."""
        return len(self.events) >= self.params.min_events

    @property
    def opened_wide(self) -> bool:
        """At least one large open-and-close (the "open your mouth" challenge)."""
        return any(e.amplitude >= self.params.wide_amplitude for e in self.events)

    def reset(self) -> None:
        self.events.clear()
        self._history.clear()
        self._open = None
        self._trough = math.inf

    def _baseline(self, t: float, mar: float) -> float:
        p = self.params
        self._history.append((t, mar))
        while self._history[0][0] < t - p.baseline_window_s:
            self._history.popleft()
        values = np.fromiter((m for _, m in self._history), dtype=np.float64)
        return float(np.percentile(values, p.baseline_percentile))

    def update(self, t: float, mar: float, frontal_ok: bool = True) -> MouthEvent | None:
        """One sample at media time `t`. `frontal_ok` False (head turned too far for the
        2D lip distances to mean anything, or no face) drops an excursion in progress."""
        p = self.params
        if not frontal_ok or not math.isfinite(mar):
            self._open = None
            return None
        base = self._baseline(t, mar)
        if self._open is None:
            self._trough = min(self._trough, mar)
            if mar - max(base, self._trough) >= p.open_delta:
                self._open = _Excursion(start_t=t, base=base, peak=mar)
            return None
        exc = self._open
        exc.peak = max(exc.peak, mar)
        floor = min(exc.base, base)
        if mar - floor > p.close_fraction * (exc.peak - floor):
            return None
        self._open, self._trough = None, mar
        event = MouthEvent(start_t=exc.start_t, end_t=t, amplitude=exc.peak - floor)
        self.events.append(event)
        return event
