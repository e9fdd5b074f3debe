"""Dense face landmarks (MediaPipe Face Mesh, 478 points) tracked across video frames.

Why Face Mesh in video mode: after the first detection it tracks each face from the
previous frame's landmarks instead of running the detector again, which is both the
cheapest per-frame cost and the steadiest landmark series (less jitter in the eye and
lip contours that the blink and mouth cues measure). `refine_landmarks` adds the iris
points and a better-fitted eye and lip contour, which the eye aspect ratio needs.

Not thread-safe, and deliberately one instance per stream or clip: the graph keeps the
previous frame's faces as tracking state, so two clips interleaved through one instance
would track one clip's face into the other's frames (and MediaPipe's graph itself must
not be fed from two threads at once).
"""

from __future__ import annotations

import os
import threading

# MediaPipe's C++ side logs every graph start to stderr; keep the service log readable.
os.environ.setdefault("GLOG_minloglevel", "2")

import cv2
import mediapipe as mp
import numpy as np

NUM_LANDMARKS = 478


def _box_area(pts: np.ndarray) -> float:
    extent = pts[:, :2].max(axis=0) - pts[:, :2].min(axis=0)
    return float(extent[0] * extent[1])


class FaceLandmarker:
    """Landmarks of the tracked face per BGR frame, in pixel coordinates, and on
    request the boxes of every face in the frame.

    Why one tracked face plus a separate face count: FaceMesh asked for two faces runs
    its face detector on every frame while only one is present (7.3 ms per 640x480
    frame instead of 5.3 here); a second person entering the picture is just as
    visible to a BlazeFace pass a few times a second (`face_boxes`), at a fraction of
    the cost.
    """

    def __init__(self, max_faces: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        self._options = dict(static_image_mode=False, max_num_faces=max_faces,
                             refine_landmarks=True,
                             min_detection_confidence=min_detection_confidence,
                             min_tracking_confidence=min_tracking_confidence)
        self._mesh = mp.solutions.face_mesh.FaceMesh(**self._options)
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_detection_confidence)

    def face_boxes(self, image_bgr: np.ndarray) -> list[tuple[float, float, float, float]]:
        """(x, y, w, h) in pixels of every face BlazeFace (short range) sees."""
        h, w = image_bgr.shape[:2]
        rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        boxes = []
        for det in self._detector.process(rgb).detections or []:
            rel = det.location_data.relative_bounding_box
            boxes.append((rel.xmin * w, rel.ymin * h, rel.width * w, rel.height * h))
        return boxes

    def detect(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        """One (478, 3) float32 array per face, largest face first: x, y in pixels, z in
        the same scale as x (MediaPipe's relative depth times the image width; smaller is
        nearer).

        Largest first because MediaPipe's own order is not stable: on the ZJU clips a
        small face in the background is now and then listed first, and a caller taking
        `faces[0]` would measure the wrong person's eyes and lips.
        """
        h, w = image_bgr.shape[:2]
        rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        result = self._mesh.process(rgb)
        faces: list[np.ndarray] = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            pts *= np.array([w, h, w], dtype=np.float32)
            faces.append(pts)
        faces.sort(key=_box_area, reverse=True)
        return faces

    def reset(self) -> None:
        """Forget the tracked faces before a new clip (the next frame detects afresh):
        a new run of the same graph, so the models stay loaded."""
        self._mesh.reset()

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()


class LandmarkerPool:
    """Landmarkers lent to one clip or stream at a time and reset between them.

    Why: building a FaceMesh graph per session and tearing it down again churns tens
    of MB through the allocator each time; reusing a few warm instances keeps memory
    flat over thousands of sessions (bench/stream_load.py --soak) and saves the ~50 ms
    graph start per session.
    """

    def __init__(self, max_idle: int) -> None:
        self._idle: list[FaceLandmarker] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()

    def acquire(self) -> FaceLandmarker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return FaceLandmarker()

    def release(self, landmarker: FaceLandmarker) -> None:
        landmarker.reset()
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(landmarker)
                return
        landmarker.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for landmarker in idle:
            landmarker.close()
