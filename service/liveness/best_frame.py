"""Keep the one frame most worth judging: sharp, frontal, eyes open, well exposed.

Silent liveness and face comparison each look at a single image; giving them the best
frame of the clip (not the first, not a random one) is what makes their answers stable.
Scored as frames arrive, so only one frame is ever held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from service.vision.detection import Detection


@dataclass(frozen=True)
class FrameQuality:
    sharpness: float  # variance of the Laplacian of the face resized to 112 px
    brightness: float  # mean grey level of the face
    yaw: float  # nose offset in eye distances (0 = frontal)
    eyes_open: float  # eye aspect ratio relative to the person's open-eye baseline
    face_px: float

    def score(self) -> float:
        """Higher is better; each factor saturates where more stops helping."""
        sharp = min(self.sharpness, 300.0) / 300.0
        frontal = max(0.0, 1.0 - abs(self.yaw) / 0.5)
        exposure = max(0.0, 1.0 - abs(self.brightness - 128.0) / 100.0)
        size = min(self.face_px, 160.0) / 160.0
        eyes = min(max(self.eyes_open, 0.0), 1.0)
        return sharp * frontal * exposure * size * (0.3 + 0.7 * eyes)

    def to_json(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in self.__dict__.items()}


def face_crop_stats(image: np.ndarray, box: tuple[float, float, float, float]
                    ) -> tuple[float, float]:
    """(sharpness, brightness) of the face box."""
    h, w = image.shape[:2]
    x, y, bw, bh = box
    x0, y0 = int(max(0, x)), int(max(0, y))
    x1, y1 = int(min(w, x + bw)), int(min(h, y + bh))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0, 0.0
    # INTER_LINEAR, not AREA: a fifth of the cost on a 300 px face, and the ranking of
    # frames of one clip by sharpness is what matters here, not the absolute value
    grey = cv2.cvtColor(cv2.resize(image[y0:y1, x0:x1], (112, 112),
                                   interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var()), float(grey.mean())


@dataclass
class BestFrame:
    t: float
    image: np.ndarray
    landmarks: np.ndarray
    quality: FrameQuality
    score: float
    # the image detector's face in this frame, once looked up (service.judging.video):
    # silent liveness and face comparison both need it, the search runs once
    face: Detection | None = None
    # its silent-liveness judgement, once made (service.judging.video.judge_frame):
    # (LivenessJudgement or None, why not). A stream judges a kept frame ahead of the
    # decision once it has stayed among the best for a while, so the decision that
    # follows the last challenge has little left to do.
    judged: tuple[Any, str] | None = None


class BestFrameKeeper:
    """The `keep` best frames, at least `spacing_s` apart (so they are different
    moments, not three copies of one), best first.

    Why several: one frame's presentation-attack score can swing with a motion blur or
    a half-closed eye that the quality score did not see; the median over a few good,
    separate frames is steadier (the decision uses it).
    """

    def __init__(self, keep: int = 3, spacing_s: float = 0.3) -> None:
        self.keep = keep
        self.spacing_s = spacing_s
        self.frames: list[BestFrame] = []

    @property
    def best(self) -> BestFrame | None:
        return self.frames[0] if self.frames else None

    def offer(self, t: float, image: np.ndarray, landmarks: np.ndarray,
              quality: FrameQuality) -> bool:
        score = quality.score()
        near = [f for f in self.frames if abs(f.t - t) < self.spacing_s]
        if any(f.score >= score for f in near):
            return False
        if not near and len(self.frames) >= self.keep and score <= self.frames[-1].score:
            return False
        # the frame buffer may be reused by the decoder: keep our own copy
        frame = BestFrame(t, image.copy(), landmarks.copy(), quality, score)
        kept = [f for f in self.frames if f not in near] + [frame]
        self.frames = sorted(kept, key=lambda f: -f.score)[: self.keep]
        return True

    def settled_unjudged(self, now: float, settle_s: float) -> BestFrame | None:
        """A kept frame not yet judged that has stayed among the best for `settle_s`
        (a frame joins the keeper at its own time `t`, so that is `now - t`): worth
        judging ahead of the decision. Frames that just came in are left alone; about
        two in three are pushed out again within a second (blink clips of shared/data)."""
        for frame in self.frames:
            if frame.judged is None and now - frame.t >= settle_s:
                return frame
        return None

    def clear(self) -> None:
        self.frames = []
