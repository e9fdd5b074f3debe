"""Face image quality: size, sharpness, exposure and pose, measured on the main face.

Why gate before judging: a presentation-attack model asked about a tiny, blurred, dark
or turned-away face answers something, but not something worth trusting. Those images
get 4005 ("cannot decide") instead of a guess. Thresholds live in QualitySettings with the
range they were checked against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from service.vision.detection import Detection


@dataclass(frozen=True)
class QualitySettings:
    # Checked on shared/data: webcam frames (320x240) show faces 103-146 px wide,
    # passport portraits 82-180 px; PAD models take an 80 px crop, so 64 px is the floor.
    # Measured on the face detector's box: its shorter side, in the image's pixels.
    min_face_side_px: float = 64.0
    # Variance of the Laplacian of the face resized to 112x112 (grey): 59-461 on the live
    # webcam frames and samples, 90-416 on the spoof samples, 300-1100 on DSLR photos.
    # A Gaussian blur of sigma 3 on a live frame brings it under 10.
    min_sharpness: float = 25.0
    # Mean grey level of the face: live samples 93-164, spoof samples 65-171.
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    # Fraction of face pixels clipped to white (glare, overexposure): samples <= 0.10.
    max_clipped: float = 0.35
    # Nose offset from the eyes' midpoint in eye distances (~0.5 at 30-35 degrees of yaw)
    # and eye-line angle: samples stay within 0.34 and 13 degrees.
    max_yaw: float = 0.5
    max_roll_deg: float = 30.0


@dataclass(frozen=True)
class FaceQuality:
    face_px: float
    sharpness: float
    brightness: float
    clipped: float
    yaw: float
    roll_deg: float

    def problems(self, limits: QualitySettings) -> list[str]:
        """Plain-words reasons the face cannot be judged (empty when it can)."""
        found = []
        if self.face_px < limits.min_face_side_px:
            found.append("face too small")
        if self.sharpness < limits.min_sharpness:
            found.append("image too blurred")
        if self.brightness < limits.min_brightness:
            found.append("face too dark")
        if self.brightness > limits.max_brightness or self.clipped > limits.max_clipped:
            found.append("face overexposed")
        if abs(self.yaw) > limits.max_yaw or abs(self.roll_deg) > limits.max_roll_deg:
            found.append("face not frontal")
        return found

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def measure_quality(bgr: np.ndarray, face: Detection) -> FaceQuality:
    h, w = bgr.shape[:2]
    x, y, bw, bh = face.box
    x0, y0 = int(max(0, x)), int(max(0, y))
    x1, y1 = int(min(w, x + bw)), int(min(h, y + bh))
    crop = bgr[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    grey = cv2.cvtColor(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2GRAY)
    right_eye, left_eye, nose = face.landmarks[0], face.landmarks[1], face.landmarks[2]
    eye_vec = left_eye - right_eye
    eye_dist = max(1e-6, float(np.linalg.norm(eye_vec)))
    mid = (right_eye + left_eye) / 2
    # project the nose offset on the eye line: sideways displacement = yaw
    yaw = float(np.dot(nose - mid, eye_vec) / eye_dist**2)
    return FaceQuality(
        face_px=float(min(bw, bh)),
        sharpness=float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        brightness=float(grey.mean()),
        clipped=float((grey >= 250).mean()),
        yaw=yaw,
        roll_deg=float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0]))),
    )
