"""One hold action's run of frames: when it became an action and when it ended.

Frames are judged by their times, not their count: the stream may be analysed at a
lower rate while the script only waits. A natural blink (an eye closure shorter than
`natural_blink_max_s`), a syllable or a landmark glitch never lasts long enough to become
an onset, so it is no action at all and never fails anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.liveness.challenges.settings import ChallengeSettings


@dataclass
class ActionRun:
    """One hold action's current run of frames showing it on.

    A run becomes an onset (`confirmed`) once it has been on without a break for its
    confirmation time: a blink, a syllable or a glitch never gets there. From then on
    it tolerates breaks (off frames for under `dropout_s`, no face for up to
    `face_lost_max_s`) and ends at the first frame of the break that ended it.
    """

    start: float | None = None  # first on frame of the run; None: no run
    last_on: float = 0.0
    confirmed: bool = False
    gap_start: float | None = None  # first frame after last_on (off or without a face)
    off_since: float | None = None  # first off frame (with a face) of the current gap

    def update(self, t: float, face: bool, on: bool, confirm_s: float,
               params: ChallengeSettings) -> float | None:
        """One frame; returns the end time when a confirmed run has just ended."""
        if face and on:
            if self.start is None:
                self.start = t
            self.last_on, self.gap_start, self.off_since = t, None, None
            self.confirmed = self.confirmed or t - self.start >= confirm_s
            return None
        if self.start is None:
            return None
        if self.gap_start is None:
            self.gap_start = t
        if face and self.off_since is None:
            self.off_since = t
        if not self.confirmed:
            if face or t - self.last_on > params.face_lost_max_s:
                self.start = None  # an onset needs its whole confirmation time on
            return None
        # judged on frames with a face: a face lost after a flicker is no evidence of off
        if face and self.off_since is not None and t - self.off_since >= params.dropout_s:
            return self._end(self.off_since)
        if t - self.last_on > params.face_lost_max_s:
            return self._end(self.gap_start)
        return None

    def _end(self, end: float) -> float:
        self.start, self.confirmed, self.gap_start, self.off_since = None, False, None, None
        return end
