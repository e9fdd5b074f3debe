"""Measurements on one face's MediaPipe Face Mesh landmarks: eyes, mouth, box.

Pure functions on a (478, 3) array in pixel coordinates (as FaceLandmarker returns;
the iris points, 468-477, are not read):
the cue state machines consume these numbers, never raw landmarks, so the same series
can be computed from an uploaded clip or a live stream. Index sets were checked on a
ZJU webcam frame: upper and lower lid points of each pair share their x within a pixel,
the corners lie on the outside, and the same holds for the inner-lip pairs.

"Right" and "left" are the person's own: their right eye appears on the image's left
in an unmirrored camera frame.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Side = Literal["left", "right"]

# Six-point eye contour in the order of Soukupova & Cech (2016): corner, two upper lid
# points, the other corner, two lower lid points (p2/p6 and p3/p5 face each other).
EYE_POINTS: dict[str, tuple[int, int, int, int, int, int]] = {
    "right": (33, 160, 158, 133, 153, 144),
    "left": (362, 385, 387, 263, 373, 380),
}
# Inner-lip pairs (upper, lower) across the middle of the mouth, and the inner corners.
# Averaging five pairs instead of 13/14 alone steadies the ratio when the lips open
# asymmetrically (speech) and against single-point jitter.
LIP_PAIRS: tuple[tuple[int, int], ...] = ((81, 178), (82, 87), (13, 14), (312, 317),
                                          (311, 402))
LIP_CORNERS = (78, 308)


def _dist(lm: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(lm[a, :2] - lm[b, :2]))


def eye_aspect_ratio(lm: np.ndarray, side: Side) -> float:
    """Lid opening over eye width (2D): 0.22-0.34 open on the ZJU clips, 0.03-0.1 shut.

    2D on purpose: the eyelids close in the image plane; MediaPipe's z for lid points
    is a weak guess and would only add noise.
    """
    p1, p2, p3, p4, p5, p6 = EYE_POINTS[side]
    width = _dist(lm, p1, p4)
    if width <= 0.0:
        return 0.0
    return (_dist(lm, p2, p6) + _dist(lm, p3, p5)) / (2.0 * width)


def mouth_aspect_ratio(lm: np.ndarray) -> float:
    """Mean inner-lip opening over the inner mouth width: ~0 closed, 0.3+ wide open."""
    width = _dist(lm, *LIP_CORNERS)
    if width <= 0.0:
        return 0.0
    opening = sum(_dist(lm, upper, lower) for upper, lower in LIP_PAIRS) / len(LIP_PAIRS)
    return opening / width


def face_box(lm: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box (x, y, w, h) in pixels of all landmarks."""
    x0, y0 = float(lm[:, 0].min()), float(lm[:, 1].min())
    x1, y1 = float(lm[:, 0].max()), float(lm[:, 1].max())
    return x0, y0, x1 - x0, y1 - y0


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the two eye centres (mean of each eye's corners), image-left first.

    Ordered by image position, not by name, so the result is the same for a mirrored
    frame: the aligner, the yaw and the planarity measures all want image order.
    """
    # the sum of two rows over 2, not a fancy-indexed mean: the same float32 values in
    # a quarter of the time (this runs ~5 times per analysed frame)
    a, b = (lm[33, :2] + lm[133, :2]) / 2, (lm[362, :2] + lm[263, :2]) / 2
    return (a, b) if a[0] <= b[0] else (b, a)


NOSE_BRIDGE_TOP, NOSE_BASE = 168, 2


def eye_openness(lm: np.ndarray, side: Side) -> float:
    """Lid opening over the nose length (bridge top to nose base), not the eye width.

    During a blink only the lids move, so this changes exactly like the eye aspect
    ratio (relative to the open level). But a flat photo tilted in front of the camera
    is squeezed vertically as a whole: its lid gap and its nose shrink together, so
    this stays level where the EAR falls and looks like a blink (measured: a printed
    face tilted back and forth gave 1-2 false blinks per 4 s with the EAR, none with
    this ratio).
    """
    _, p2, p3, _, p5, p6 = EYE_POINTS[side]
    nose = _dist(lm, NOSE_BRIDGE_TOP, NOSE_BASE)
    if nose <= 0.0:
        return 0.0
    return (_dist(lm, p2, p6) + _dist(lm, p3, p5)) / (2.0 * nose)
