"""SFace face embedder: a 128-d identity vector from a face aligned by its landmarks.

Alignment maps the five landmarks onto the 112x112 template the network was trained on
(a similarity transform), which is what makes cosine similarity meaningful across
poses, sizes and in-plane rotation.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from service.vision.detection import Detection


class FaceEmbedder:
    """SFace through OpenCV's FaceRecognizerSF. Not thread-safe: one instance per thread."""

    def __init__(self, model_path: Path) -> None:
        self._net = cv2.FaceRecognizerSF.create(str(model_path), "")

    def align(self, bgr: np.ndarray, face: Detection) -> np.ndarray:
        return self._net.alignCrop(bgr, face.as_row())

    def __call__(self, bgr: np.ndarray, face: Detection) -> np.ndarray:
        """Unit-norm embedding of `face` in `bgr`."""
        feature = self._net.feature(self.align(bgr, face)).reshape(-1).astype(np.float32)
        norm = float(np.linalg.norm(feature))
        return feature / norm if norm > 0 else feature


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))
