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

`moved` (at least `min_events` excursions) reads as talking, reading digits aloud, or a
mouth challenge; each event's `amplitude` says how wide it opened.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from service.liveness.percentile import percentile


@dataclass(frozen=True)
class MouthSettings:
    """Calibrated with bench/blink_eval.py on shared/data at 15 fps: the 7 GRID speech
    clips (talking) against the 56 silent ZJU blink clips."""

    # The closed level is this low percentile of the inner-lip aspect ratio (some
    # people rest with lips apart: 0.1-0.15 on three ZJU clips).
    baseline_window_s: float = 4.0
    baseline_percentile: float = 10.0
    # An excursion opens this far above the closed level and the last low point, and
    # ends when the MAR has fallen back by close_fraction of its rise. At 0.08 every GRID
    # clip shows >= 3 excursions at 15 fps (0.10: one clip only 2) and landmark jitter on
    # the 56 silent ZJU clips makes at most one; window and fraction barely matter.
    open_delta: float = 0.08
    close_fraction: float = 0.5
    # "Moved the mouth" = this many excursions: only 000011M_UNN among the ZJU clips
    # reaches 2, and that subject does talk (checked by eye).
    min_events: int = 2


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

    def __init__(self, params: MouthSettings = MouthSettings()) -> None:
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
        return percentile((m for _, m in self._history), p.baseline_percentile)

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
