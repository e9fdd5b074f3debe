"""YuNet face detector: boxes, five landmarks and a score for every face in an image.

Why YuNet: it ships as a 120 KB ONNX file inside a PyPI wheel, runs at any input size
(so one model covers selfies, group photos and document scans), finds faces down to
~10 px and gives the five landmarks that the embedder aligns with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from service.vision.shrink import shrink


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

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Detection:
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


# Largest input YuNet is run on in one piece, and the overlap of the tiles a larger
# pass is cut into. OpenCV's network keeps buffers for its input size (~1 GB at 4000 px,
# kept until a smaller pass ran on the same thread); tiles bound them at the 1600 px
# pass's. A face up to `TILE_OVERLAP` px wide lies whole in some tile; larger ones were
# already found by the smaller passes of the search (at 1600 px they are >= 100 px).
MAX_INPUT_SIDE = 1600
TILE_OVERLAP = 256


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the fewest equal tiles covering `length` with neighbours
    overlapping by at least `overlap`, spread evenly (the last one flush with the end)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


class FaceDetector:
    """YuNet through OpenCV's FaceDetectorYN. Not thread-safe: one instance per thread."""

    def __init__(self, model_path: Path, score_threshold: float = 0.3,
                 nms_threshold: float = 0.3, top_k: int = 5000) -> None:
        self._net = cv2.FaceDetectorYN.create(
            str(model_path), "", (320, 320), score_threshold, nms_threshold, top_k
        )
        self._size: tuple[int, int] = (320, 320)
        self._nms = nms_threshold

    def __call__(self, bgr: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """Detect faces, running on a copy no larger than `max_side` (longest side); a
        copy larger than MAX_INPUT_SIDE is searched in overlapping tiles."""
        h, w = bgr.shape[:2]
        scale = 1.0 if max_side is None else min(1.0, max_side / max(h, w))
        image = bgr
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = shrink(bgr, size)
        ih, iw = image.shape[:2]
        found: list[Detection] = []
        tile_w, tile_h = min(iw, MAX_INPUT_SIDE), min(ih, MAX_INPUT_SIDE)
        for y in tile_origins(ih, tile_h, TILE_OVERLAP):
            for x in tile_origins(iw, tile_w, TILE_OVERLAP):
                tile = image[y:y + tile_h, x:x + tile_w]
                found += [d.shifted(float(x), float(y)) for d in self._detect(tile)]
        if len(found) > 1 and (tile_w, tile_h) != (iw, ih):
            found = self._merge(found)
        return [d.shifted(0.0, 0.0, scale) for d in found] if scale != 1.0 else found

    def _detect(self, image: np.ndarray) -> list[Detection]:
        ih, iw = image.shape[:2]
        if (iw, ih) != self._size:
            self._net.setInputSize((iw, ih))
            self._size = (iw, ih)
        _, rows = self._net.detect(np.ascontiguousarray(image))
        if rows is None:
            return []
        return [Detection(box=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
                          landmarks=row[4:14].reshape(5, 2).astype(np.float32),
                          score=float(row[14]))
                for row in rows]

    def _merge(self, found: list[Detection]) -> list[Detection]:
        """One detection per face where tiles overlap: the same suppression YuNet applies
        within one input (IoU over its NMS threshold), across tiles."""
        kept: list[Detection] = []
        for det in sorted(found, key=lambda d: d.score, reverse=True):
            if all(iou(det.box, k.box) <= self._nms for k in kept):
                kept.append(det)
        return kept
