"""Head turns for the turn_left / turn_right challenges, from landmark geometry.

Yaw is the nose tip's sideways offset from the eyes' midpoint, in eye distances, in
the camera's (unmirrored) image: positive when the nose points to image right, which is
the person's own left. ~0.35 is ~20 degrees. Measured against the person's own resting
yaw (the median of the first frames), so a camera placed off-centre does not count as a
turn.
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


@dataclass(frozen=True)
class TurnParams:
    # yaw change from rest that makes a turn (0.35 ~ 20 degrees); a talking or blinking
    # person in shared/data stays within 0.15 of rest
    min_turn: float = 0.35
    # frames in a row beyond it (one frame could be a landmark glitch)
    min_frames: int = 2
    baseline_frames: int = 5


@dataclass(frozen=True)
class TurnEvent:
    t: float
    action: str  # "turn_left" | "turn_right" (the person's left / right)
    yaw: float


@dataclass
class TurnDetector:
    params: TurnParams = field(default_factory=TurnParams)
    _rest: list[float] = field(default_factory=list)
    _run: int = 0
    _direction: str = ""
    _armed: bool = True

    def update(self, t: float, yaw: float) -> TurnEvent | None:
        if len(self._rest) < self.params.baseline_frames:
            self._rest.append(yaw)
            return None
        delta = yaw - median(self._rest)
        direction = "turn_left" if delta > 0 else "turn_right"
        if abs(delta) < self.params.min_turn / 2:
            self._armed, self._run = True, 0  # back near rest: the next turn is new
            return None
        if abs(delta) < self.params.min_turn or not self._armed:
            self._run = 0
            return None
        self._run = self._run + 1 if direction == self._direction else 1
        self._direction = direction
        if self._run >= self.params.min_frames:
            self._armed, self._run = False, 0
            return TurnEvent(t, direction, delta)
        return None
