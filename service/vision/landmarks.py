"""Dense face landmarks (MediaPipe Face Mesh, 478 points) tracked across video frames.

Why Face Mesh in video mode: after the first detection it tracks each face from the
previous frame's landmarks instead of running the detector again, which is both the
cheapest per-frame cost and the steadiest landmark series (less jitter in the eye and
lip contours that the blink and mouth cues measure).

Why the model with attention (`refine_landmarks`): besides the 10 iris points (which no
cue reads) it refits the eye and lip contours, and the cues need that fit. Measured
with bench/blink_eval.py --plain on the labelled clips, the 468-point model without
attention costs ~0.5 ms less per frame but blink recall falls from 98.4% to 87.8%, the
eyes_closed hold state reads 89 of 189 labelled blinks instead of 166, and mouth
movement is seen on 5 of 7 talking clips instead of 7 (README "Video liveness").
`attention=False` runs that model, for the comparison only.

Not thread-safe, and deliberately one instance per stream or clip: the graph keeps the
previous frame's faces as tracking state, so two clips interleaved through one instance
would track one clip's face into the other's frames (and MediaPipe's graph itself must
not be fed from two threads at once).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

# MediaPipe's C++ side logs every graph start to stderr; keep the service log readable.
os.environ.setdefault("GLOG_minloglevel", "2")

import cv2
import mediapipe as mp
import numpy as np

NUM_LANDMARKS = 478  # 468 without attention (the iris points come last)


# A NormalizedLandmarkList serialises each point as one 17-byte record: field 1's tag
# and length (0x0a 0x0f), then x, y, z as fixed32 floats behind tags 0x0d, 0x15, 0x1d
# (protobuf encoding; FaceMesh never sets visibility or presence).
_RECORD = np.dtype([("key", "u1"), ("size", "u1"), ("tag_x", "u1"), ("x", "<f4"),
                    ("tag_y", "u1"), ("y", "<f4"), ("tag_z", "u1"), ("z", "<f4")])
_TAGS = {"key": 0x0A, "size": 0x0F, "tag_x": 0x0D, "tag_y": 0x15, "tag_z": 0x1D}


def _points(face) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(n, 3) float32 normalised x, y, z of a NormalizedLandmarkList.

    Why from the serialised bytes: reading 468 x 3 protobuf attributes one by one costs
    ~0.3 ms per frame in Python, the bytes a fraction of that. A list whose records do not
    all have that layout (protobuf leaves out a coordinate of exactly 0.0) takes the
    attribute walk, so the values are the same either way.
    """
    data = face.SerializeToString()
    if len(data) % _RECORD.itemsize == 0:
        records = np.frombuffer(data, _RECORD)
        if all((records[name] == value).all() for name, value in _TAGS.items()):
            points = np.empty((len(records), 3), np.float32)
            points[:, 0], points[:, 1], points[:, 2] = records["x"], records["y"], records["z"]
            return points
    return np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)


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
                 min_tracking_confidence: float = 0.5,
                 on_detect: Callable[[float], None] | None = None,
                 attention: bool = True) -> None:
        """`on_detect` is told the seconds of each `detect` (the service's metrics)."""
        self._on_detect = on_detect
        self._options = dict(static_image_mode=False, max_num_faces=max_faces,
                             refine_landmarks=attention,
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
        """One (478, 3) float32 array per face (468 without attention), largest face
        first: x, y in pixels, z in the same scale as x (MediaPipe's relative depth times
        the image width; smaller is nearer).

        Largest first because MediaPipe's own order is not stable: on the ZJU clips a
        small face in the background is now and then listed first, and a caller taking
        `faces[0]` would measure the wrong person's eyes and lips.
        """
        started = time.perf_counter()
        h, w = image_bgr.shape[:2]
        rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        result = self._mesh.process(rgb)
        faces: list[np.ndarray] = []
        for face in result.multi_face_landmarks or []:
            pts = _points(face)
            pts *= np.array([w, h, w], dtype=np.float32)
            faces.append(pts)
        faces.sort(key=_box_area, reverse=True)
        if self._on_detect is not None:
            self._on_detect(time.perf_counter() - started)
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

    def __init__(self, max_idle: int, on_detect: Callable[[float], None] | None = None
                 ) -> None:
        self._idle: list[FaceLandmarker] = []
        self._max_idle = max_idle
        self._on_detect = on_detect
        self._lock = threading.Lock()

    def acquire(self) -> FaceLandmarker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return FaceLandmarker(on_detect=self._on_detect)

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
