"""Second-opinion face check with MediaPipe's BlazeFace (short range) detector.

Why a second detector: YuNet, like any single detector, now and then sees a confident
face in a painting or a document's guilloche print. BlazeFace is a different network
trained on different data; a candidate both of them find, at the same place, on the same
canonical crop, is a face. It ships inside mediapipe 0.10.21 (manifest entry
face_landmarker_detector), so no extra weights are needed.
"""

from __future__ import annotations

import os

# MediaPipe's C++ side logs every graph start to stderr; keep the service log readable.
os.environ.setdefault("GLOG_minloglevel", "2")

import mediapipe as mp
import numpy as np

from service.vision.detection import iou


class FacePresence:
    """Best BlazeFace score for a face overlapping `box` in an RGB crop; not thread-safe."""

    def __init__(self) -> None:
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=0.2
        )

    def __call__(self, rgb: np.ndarray, box: tuple[float, float, float, float],
                 min_iou: float = 0.3) -> float:
        h, w = rgb.shape[:2]
        result = self._detector.process(np.ascontiguousarray(rgb))
        best = 0.0
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            found = (rel.xmin * w, rel.ymin * h, rel.width * w, rel.height * h)
            if iou(found, box) >= min_iou:
                best = max(best, float(det.score[0]))
        return best

    def close(self) -> None:
        self._detector.close()
