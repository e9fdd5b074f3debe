"""Per-frame action states for the hold-and-release challenges.

The challenge script (challenges/script.py) asks a person to close their eyes, open their mouth
wide or turn their head, hold it until told to release, then release. It needs, for
every analysed frame, whether each action is *on*: this module turns one face's
landmarks into that `ActionState`. It reports raw per-frame states; durations (a natural
blink is not a held closure, speech does not hold a wide mouth) are the script's job.

Every state is relative to the person's own level, because absolute values differ a lot
between faces: the eyes' open level (a high percentile of the lid gap), the mouth's
closed level (a low percentile of the inner-lip ratio: some people rest with lips
apart), the head's rest yaw (the median: a camera placed off-centre is no turn). The
blink and mouth detectors keep similar levels over 3-4 s windows, but a held action
would drag those within a few seconds (eyes closed for 3 s fill most of a 3 s window),
so the levels here are learnt only from frames where the action is off: a hold cannot
move its own reference. If a state stays on longer than any challenge could ask
(`relearn_s`), it is taken as the person's new normal and the level is learnt afresh,
so a level learnt from a bad start cannot lock a state on for the whole session.

Entering and leaving a state use two thresholds (hysteresis): a held action sits near
one threshold for seconds, and landmark jitter across a single threshold would read as
the hold breaking again and again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from service.liveness.geometry import eye_openness, mouth_aspect_ratio
from service.liveness.percentile import percentile
from service.liveness.turns import nose_yaw


@dataclass(frozen=True)
class ActionState:
    """What one analysed frame shows (times on the session clock, seconds)."""

    t: float
    face: bool  # a tracked face in this frame
    eyes_closed: bool  # both eyes closed relative to the person's open level
    mouth_open: bool  # inner lips wide open (a deliberate opening, not speech)
    turn: str | None  # "turn_left" | "turn_right" (the person's own side) | None


def no_face(t: float) -> ActionState:
    """The state of a frame without a face: nothing is on."""
    return ActionState(t, False, False, False, None)


@dataclass(frozen=True)
class HoldSettings:
    """Calibrated on ../shared/data with every frame of the 56 ZJU blink clips (189
    labelled blinks) and the 7 GRID speech clips (FaceMesh landmarks, as
    bench/blink_eval.py extracts them); numbers below are from that run."""

    # Eyes: each eye's lid gap (geometry.eye_openness) over its open level (85th
    # percentile, as BlinkSettings). The deepest frame of a labelled blink - the lids
    # shut - reads 0.17-0.64 (5th-90th percentile, median 0.45: FaceMesh never puts
    # the lids quite together), open frames outside blinks 0.99 median, 1.1% of them
    # under 0.65. Closed under 0.65: this tracker, run on every frame, reads 170 of
    # the 189 blinks closed (0.6: ~10 fewer; 0.7 catches nearly all but comes nearer
    # a downward glance), and open frames closed only in runs of at most 0.17 s. Open
    # again above 0.75: a shut eye's reading flickers by +-0.1, and the hysteresis
    # keeps it one closure; with it the longest labelled natural blink reads closed
    # for 0.57 s (99th percentile 0.51 s; at 10 fps 0.50 s), under
    # ChallengeSettings.natural_blink_max_s.
    eyes_closed_ratio: float = 0.65
    eyes_open_ratio: float = 0.75
    eye_level_percentile: float = 85.0
    # Mouth: inner-lip aspect ratio (geometry.mouth_aspect_ratio) above the closed
    # level (10th percentile, as MouthSettings). Speech peaks on the GRID clips: 0.21-0.51
    # above the closed level, but briefly: the longest run at or above 0.30 lasts
    # 0.16 s, at 0.35 0.12 s (at 0.25 it is 0.44 s, so 0.25 would need a hold
    # requirement speech can reach). Open from 0.35 (a deliberate wide opening reads
    # higher still), closed again under 0.3 so the held mouth does not flicker: this
    # tracker, on every frame of the 7 GRID clips, reads mouth_open in 2 of them for at
    # most 0.12 s (3 frames), far under ChallengeSettings.onset_min_s; never on the 56
    # silent ZJU clips.
    mouth_open_delta: float = 0.35
    mouth_close_delta: float = 0.3
    mouth_level_percentile: float = 10.0
    # Turns: nose yaw (turns.nose_yaw, eye distances; 0.35 is ~20 degrees) away from the
    # rest yaw (median). No footage in shared/data turns the head: blinking and talking
    # faces there stay within 0.063 of their median yaw. So the entry is HeadTurnSettings'
    # 0.35 (~20 degrees, a clear turn for a person asked to turn; ~5x the still
    # jitter) and the exit 0.25 (~14 degrees, still ~4x the jitter): set from geometry,
    # not measured on turning people.
    turn_enter: float = 0.35
    turn_exit: float = 0.25
    # the rest yaw is held within this of frontal (HeadTurnSettings.rest_max_yaw: a person who
    # starts turned is not resting)
    rest_max_yaw: float = 0.1
    # Levels come from the last `level_window_s` of frames where the action was off,
    # once `min_samples` such frames exist (no state is reported before: 0.5 s at the
    # 10 fps stream rate, before any prompt can come). 10 s: a few challenges' worth.
    level_window_s: float = 10.0
    min_samples: int = 5
    # A state on for longer than this is the person's new normal (see the module doc):
    # longer than a reaction window plus the longest hold and release (~8 s).
    relearn_s: float = 10.0


@dataclass
class _Level:
    """A percentile of recent samples taken while an action was off."""

    percentile: float
    window_s: float
    samples: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, t: float, value: float) -> None:
        self.samples.append((t, value))
        while self.samples[0][0] < t - self.window_s:
            self.samples.popleft()

    def value(self, min_samples: int) -> float | None:
        if len(self.samples) < min_samples:
            return None
        return percentile((v for _, v in self.samples), self.percentile)

    def clear(self) -> None:
        self.samples.clear()


class HoldTracker:
    """Feed one face per analysed frame; each call returns that frame's ActionState. A
    frame without a face is `no_face(t)` and leaves the tracker as it was (the states
    keep their hysteresis: a frame or two without a face inside a hold is the script's
    to tolerate)."""

    def __init__(self, params: HoldSettings = HoldSettings()) -> None:
        p = self.params = params
        self._eye_left = _Level(p.eye_level_percentile, p.level_window_s)
        self._eye_right = _Level(p.eye_level_percentile, p.level_window_s)
        self._mouth = _Level(p.mouth_level_percentile, p.level_window_s)
        self._rest = _Level(50.0, p.level_window_s)
        # when each state came on (None: off), for hysteresis and relearning
        self._closed_since: float | None = None
        self._open_since: float | None = None
        self._turn: str | None = None
        self._turn_since = 0.0

    def update(self, t: float, landmarks: np.ndarray) -> ActionState:
        turn = self._update_turn(t, nose_yaw(landmarks))
        if turn is not None:
            # Turned: the eye and lip contours are foreshortened or hidden and their
            # ratios mean little, so neither reads as on (and neither level learns).
            self._closed_since = self._open_since = None
            return ActionState(t, True, False, False, turn)
        closed = self._update_eyes(t, eye_openness(landmarks, "left"),
                                   eye_openness(landmarks, "right"))
        mouth_open = self._update_mouth(t, mouth_aspect_ratio(landmarks))
        return ActionState(t, True, closed, mouth_open, None)

    def _update_turn(self, t: float, yaw: float) -> str | None:
        p = self.params
        rest = self._rest.value(p.min_samples)
        if rest is not None:
            rest = min(max(rest, -p.rest_max_yaw), p.rest_max_yaw)
            delta = yaw - rest
            # positive yaw: the nose points to image right, the person's own left
            side = "turn_left" if delta > 0 else "turn_right"
            if self._turn is not None and (side != self._turn or abs(delta) < p.turn_exit):
                self._turn = None
            if self._turn is None and abs(delta) >= p.turn_enter:
                self._turn, self._turn_since = side, t
        if self._turn is not None and t - self._turn_since > p.relearn_s:
            self._turn = None
            self._rest.clear()
        if self._turn is None:
            self._rest.add(t, yaw)
        return self._turn

    def _update_eyes(self, t: float, left: float, right: float) -> bool:
        p = self.params
        open_l = self._eye_left.value(p.min_samples)
        open_r = self._eye_right.value(p.min_samples)
        if open_l and open_r:
            ratio = max(left / open_l, right / open_r)  # both eyes must be closed
            if self._closed_since is None and ratio < p.eyes_closed_ratio:
                self._closed_since = t
            elif self._closed_since is not None and ratio >= p.eyes_open_ratio:
                self._closed_since = None
        if self._closed_since is not None and t - self._closed_since > p.relearn_s:
            self._closed_since = None
            self._eye_left.clear()
            self._eye_right.clear()
        if self._closed_since is None:
            self._eye_left.add(t, left)
            self._eye_right.add(t, right)
        return self._closed_since is not None

    def _update_mouth(self, t: float, mar: float) -> bool:
        p = self.params
        closed = self._mouth.value(p.min_samples)
        if closed is not None:
            delta = mar - closed
            if self._open_since is None and delta >= p.mouth_open_delta:
                self._open_since = t
            elif self._open_since is not None and delta < p.mouth_close_delta:
                self._open_since = None
        if self._open_since is not None and t - self._open_since > p.relearn_s:
            self._open_since = None
            self._mouth.clear()
        if self._open_since is None:
            self._mouth.add(t, mar)
        return self._open_since is not None
