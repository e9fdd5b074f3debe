"""YuNet face detector: boxes, five landmarks and a score for every face in an image.

Why YuNet: it ships as a 120 KB ONNX file inside a PyPI wheel, runs at any input size
(so one model covers selfies, group photos and document scans), finds faces down to
~10 px and gives the five landmarks that the embedder aligns with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Detection:
    """One face: box (x, y, w, h) and landmarks in source-image pixels.

    Landmarks, in YuNet's order: right eye, left eye, nose tip, right and left mouth
    corner (right/left of the person, i.e. image left/right for a frontal face).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (5, 2) float32
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.box[2]) * max(0.0, self.box[3])

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))

    def as_row(self) -> np.ndarray:
        """The 15-value row layout OpenCV's face APIs take."""
        return np.concatenate(
            [np.asarray(self.box, np.float32), self.landmarks.reshape(-1), [self.score]]
        ).astype(np.float32)

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> "Detection":
        """Map from a crop (scaled by `scale`, offset by dx, dy) back to the source."""
        x, y, w, h = (v / scale for v in self.box)
        return Detection(
            box=(x + dx, y + dy, w, h),
            landmarks=(self.landmarks / scale + np.array([dx, dy], np.float32)).astype(
                np.float32
            ),
            score=self.score,
        )

    def to_json(self) -> dict[str, object]:
        return {"box": [round(v) for v in self.box], "score": round(self.score, 3)}


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class FaceDetector:
    """YuNet through OpenCV's FaceDetectorYN. Not thread-safe: one instance per thread."""

    def __init__(self, model_path: Path, score_threshold: float = 0.3,
                 nms_threshold: float = 0.3, top_k: int = 5000) -> None:
        self._net = cv2.FaceDetectorYN.create(
            str(model_path), "", (320, 320), score_threshold, nms_threshold, top_k
        )
        self._size: tuple[int, int] = (320, 320)

    def __call__(self, bgr: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """Detect faces, running on a copy no larger than `max_side` (longest side)."""
        h, w = bgr.shape[:2]
        scale = 1.0 if max_side is None else min(1.0, max_side / max(h, w))
        image = bgr
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        ih, iw = image.shape[:2]
        if (iw, ih) != self._size:
            self._net.setInputSize((iw, ih))
            self._size = (iw, ih)
        _, rows = self._net.detect(image)
        if rows is None:
            return []
        found = []
        for row in rows:
            det = Detection(
                box=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
                landmarks=row[4:14].reshape(5, 2).astype(np.float32),
                score=float(row[14]),
            )
            found.append(det.shifted(0.0, 0.0, scale) if scale != 1.0 else det)
        return found
