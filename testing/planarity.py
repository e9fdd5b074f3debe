"""Motion planarity: is the "face" a flat picture tilted in front of the camera?

Not part of the service's evidence since issue 19: measured on the real heads of
shared/data/turns (bench/real_footage.py), the median ratio below is 1.3 for the man
of fsa_webcam.mp4 turning to +-44 degrees and 0.8-0.9 for the people of fsa_office and
intel_female_and_male, inside the 0.2-0.9 of synthetic tilted photos: `planar: true`
for real turning heads, so a field that says so would mislead integrators. It was never
a veto (it fired on too few tilted photos). Kept, with its tests, for the bench that
measures it, until a measure that separates real heads exists; here in testing/, not in
service/, since nothing the service runs uses it.

A flat picture turned away from the camera is foreshortened as a whole: its eye
distance shrinks against its height (or the other way round when tilted forward), but
the nose stays exactly where it was relative to the eyes, because it is printed on the
same plane. A real head turned by the same foreshortening shows parallax: the nose tip,
~0.6 eye distances in front of the eyes, swings sideways (or up/down) by several times
the foreshortening. So for key-frame pairs whose face shape changed (|d ln aspect| above
landmark jitter), we compare

    ratio = nose displacement (eye distances) / |d ln aspect|

Real heads give ratios of 3-6 (a 20 degree turn: nose 0.35, aspect 0.06); pictures give
only jitter over foreshortening, under ~1.5. Pairs whose shape did not change say
nothing (a still head and a still photo look alike) and are skipped: "not seen" is not
"live", and the other cues (blinks, mouth, challenges) carry that case.

Why not a homography fit: on a face that fills a third of the frame, a tilted sheet's
perspective inside the face region is within MediaPipe's landmark jitter, so the
homography-vs-affine residual test could not tell the two apart on our synthetic
attacks; the nose-against-shape test could.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from service.liveness.geometry import eye_centres

SUBNASALE = 2  # the base of the nose: rigid, between the eyes and the mouth


def face_shape(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(nose x, nose y, ln aspect): the nose tip's offset from the eyes' midpoint along
    and across the eye line, in eye distances, and ln(eye distance / eyes-to-nose-base)."""
    eyes = eye_centres(landmarks)
    axis = eyes[1] - eyes[0]
    dist = max(float(np.linalg.norm(axis)), 1e-6)
    along = axis / dist
    across = np.array([-along[1], along[0]])
    mid = (eyes[0] + eyes[1]) / 2
    nose = landmarks[1, :2] - mid
    height = abs(float(np.dot(landmarks[SUBNASALE, :2] - mid, across)))
    return (float(np.dot(nose, along)) / dist, float(np.dot(nose, across)) / dist,
            float(np.log(dist / max(height, 1e-6))))


@dataclass(frozen=True)
class PlanaritySettings:
    # seconds between stored key frames
    key_interval_s: float = 0.2
    # |d ln aspect| a pair needs to say anything: landmark jitter on a still face moves
    # it by ~0.02; a sheet tilted by 25 degrees by ~0.1
    min_shape_change: float = 0.12
    # pairs needed before saying anything
    min_pairs: int = 4
    # median ratio (nose displacement / shape change) below which the motion is that of
    # a plane: synthetic tilted photos 0.2-0.9, head turns and nods 2.5 and above
    planar_ratio: float = 1.5
    # key frames kept and compared (a sliding window: memory stays flat on long streams)
    window: int = 30


@dataclass
class PlanarityDetector:
    params: PlanaritySettings = field(default_factory=PlanaritySettings)
    _keys: deque[tuple[float, tuple[float, float, float]]] = field(default_factory=deque)
    ratios: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    informative: int = 0

    def update(self, t: float, landmarks: np.ndarray, eyes_open: bool = True) -> None:
        """`eyes_open` False skips the frame: closing lids drag the eye-corner landmarks
        down, which changes the measured shape without any head motion (seen on every
        blink of the ZJU clips as a 0.1 jump of ln aspect)."""
        if not eyes_open or (self._keys and t - self._keys[-1][0] < self.params.key_interval_s):
            return
        shape = face_shape(landmarks)
        for _, old in self._keys:
            change = abs(shape[2] - old[2])
            if change >= self.params.min_shape_change:
                self.informative += 1
                nose = float(np.hypot(shape[0] - old[0], shape[1] - old[1]))
                self.ratios.append(nose / change)
        self._keys.append((t, shape))
        if len(self._keys) > self.params.window:
            self._keys.popleft()

    @property
    def median_ratio(self) -> float | None:
        if len(self.ratios) < self.params.min_pairs:
            return None
        return float(np.median(np.fromiter(self.ratios, float)))

    @property
    def planar(self) -> bool:
        ratio = self.median_ratio
        return ratio is not None and ratio < self.params.planar_ratio

    def reset(self) -> None:
        """A different face from here on (a cut, a swap): its shape is not comparable."""
        self._keys.clear()

    def to_json(self) -> dict[str, object]:
        ratio = self.median_ratio
        return {"planar": self.planar, "informative_pairs": self.informative,
                "median_ratio": None if ratio is None else round(ratio, 3)}
