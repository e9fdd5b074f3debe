"""Head turns for the turn_left / turn_right challenges, from landmark geometry.

Yaw is the nose tip's sideways offset from the eyes' midpoint, in eye distances, in
the camera's (unmirrored) image: positive when the nose points to image right, which is
the person's own left. ~0.35 is ~20 degrees. Measured against the person's own resting
yaw (the median of the first frames), so a camera placed off-centre does not count as a
turn; but that rest is held within `rest_max_yaw` of frontal (`rest_yaw`), because a
person who is already turned when the clip starts (turns/intel_female.mp4 starts at
about -45 degrees) would otherwise make the swing back toward the camera a "turn".

Nose yaw against the measured yaw of ../shared/data/turns (labels.json `turn_clips`,
FaceMesh aligned to the canonical face, ~7 degrees error), every frame with both:
about 0.13 at 13 degrees, 0.2-0.33 at 22, 0.5 at 28-32, 0.55-0.65 at 35, 0.8-0.95 at
40-44 (it grows faster than the angle: the nose tip leaves the eye line's span).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.liveness.geometry import eye_centres
from service.liveness.percentile import median


def nose_yaw(landmarks: np.ndarray) -> float:
    left_in_image, right_in_image = eye_centres(landmarks)
    eye_vec = right_in_image - left_in_image
    dist = max(float(np.linalg.norm(eye_vec)), 1e-6)
    nose = landmarks[1, :2]
    return float(np.dot(nose - (left_in_image + right_in_image) / 2, eye_vec) / dist**2)


def rest_yaw(samples: list[float], limit: float) -> float:
    """The person's resting yaw from yaw samples: their median, held within `limit` of
    frontal (see the module doc)."""
    return min(max(median(samples), -limit), limit)


def nose_pitch(landmarks: np.ndarray) -> float:
    """The nose tip's offset from the eyes' midpoint across the eye line, in eye
    distances: it falls when the head tilts back (looking up) and grows when it tilts
    forward. Its level differs from face to face (0.3-0.8 on shared/data), so only
    changes of it mean anything."""
    left_in_image, right_in_image = eye_centres(landmarks)
    eye_vec = right_in_image - left_in_image
    dist = max(float(np.linalg.norm(eye_vec)), 1e-6)
    across = np.array([-eye_vec[1], eye_vec[0]]) / dist
    nose = landmarks[1, :2]
    return float(np.dot(nose - (left_in_image + right_in_image) / 2, across) / dist)


@dataclass(frozen=True)
class HeadTurnSettings:
    # yaw change from rest that makes a turn (0.35 ~ 20-25 degrees); a talking or
    # blinking person in shared/data stays within 0.15 of rest; every labelled turn
    # beyond 30 degrees in shared/data/turns reads 0.45 or more (bench/real_footage.py)
    min_turn: float = 0.35
    # frames in a row beyond it (one frame could be a landmark glitch)
    min_frames: int = 2
    baseline_frames: int = 5
    # The rest yaw is held within this of frontal (0.1 is ~6 degrees): a person who
    # starts turned is not resting (turns/intel_female.mp4 starts at -0.84, ~-45
    # degrees; fsa_webcam.mp4 at -0.55). With 0.2 the man of fsa_webcam, resting
    # "at -0.2", read +12 degrees as a left turn (bench/real_footage.py). The frontal
    # people of shared/data rest within 0.13 of frontal (ZJU 000007M -0.12, GRID,
    # intel_male 0.0). Not a population measurement: a camera more than ~6 degrees
    # off-centre makes one side's turn easier by the difference and the other's
    # harder, never a still face a turn (min_turn stays 3.5x the limit).
    rest_max_yaw: float = 0.1


@dataclass(frozen=True)
class TurnEvent:
    t: float
    action: str  # "turn_left" | "turn_right" (the person's left / right)
    yaw: float


@dataclass
class TurnDetector:
    params: HeadTurnSettings = field(default_factory=HeadTurnSettings)
    _rest: list[float] = field(default_factory=list)
    _run: int = 0
    _direction: str = ""
    _armed: bool = True
    _last_event: str = ""  # the side of the last turn reported


    def update(self, t: float, yaw: float) -> TurnEvent | None:
        if len(self._rest) < self.params.baseline_frames:
            self._rest.append(yaw)
            return None
        delta = yaw - rest_yaw(self._rest, self.params.rest_max_yaw)
        direction = "turn_left" if delta > 0 else "turn_right"
        if abs(delta) < self.params.min_turn / 2:
            self._armed, self._run = True, 0  # back near rest: the next turn is new
            return None
        # a turn to the other side is new even without a stop near rest (a rest held
        # at `rest_max_yaw` may lie off the person's frontal pose)
        armed = self._armed or direction != self._last_event
        if abs(delta) < self.params.min_turn or not armed:
            self._run = 0
            return None
        self._run = self._run + 1 if direction == self._direction else 1
        self._direction = direction
        if self._run >= self.params.min_frames:
            self._armed, self._run, self._last_event = False, 0, direction
            return TurnEvent(t, direction, delta)
        return None
