"""Silent liveness on one image (typeId 3035 with an image): live face or attack?

Pipeline: decode -> confirmed faces (one person required) -> quality gates (4005 when
the face cannot be judged) -> presentation-attack model on the main face. The same
`judge_face` call scores the best frame of a video or a stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.errors import LowQuality
from service.media.uploads import MediaSettings, decode_image
from service.vision.detection import Detection
from service.vision.faces import FaceSearchSettings, find_faces
from service.vision.quality import FaceQuality, QualitySettings, measure_quality
from service.vision.runtime import ModelRuntime


@dataclass(frozen=True)
class SilentSettings:
    # Averaged MiniFASNet probability of a real face at or above which an image is live:
    # the publisher's argmax point. bench/silent_liveness.py reports the trade-off at 0.7
    # and 0.9 (README, "Silent liveness").
    threshold: float = 0.5
    # When a face can be judged at all (4005 otherwise); calibrated in
    # service/vision/quality.py.
    quality: QualitySettings = field(default_factory=QualitySettings)


@dataclass(frozen=True)
class LivenessJudgement:
    live: bool
    live_probability: float  # the PAD models' averaged probability of a real face
    face: Detection
    quality: FaceQuality
    faces_seen: int
    per_model: tuple[float, ...] = ()

    @property
    def score(self) -> int:
        """0-100, on the same side of 50 as the verdict."""
        value = int(round(self.live_probability * 100))
        return max(50, value) if self.live else min(49, value)

    def detail(self) -> dict[str, object]:
        return {"face_used": self.face.to_json(), "faces_seen": self.faces_seen,
                "live_probability": round(self.live_probability, 4),
                "per_model": [round(p, 4) for p in self.per_model],
                "quality": self.quality.to_json()}


def judge_face(runtime: ModelRuntime, image: np.ndarray, face: Detection, faces_seen: int,
               silent: SilentSettings) -> LivenessJudgement:
    quality = measure_quality(image, face)
    problems = quality.problems(silent.quality)
    if problems:
        raise LowQuality("cannot judge liveness: " + ", ".join(problems))
    with runtime.metrics.timed("silent_liveness"):
        pad = runtime.pad()(image, face.box)
    return LivenessJudgement(pad.live_probability >= silent.threshold, pad.live_probability,
                             face, quality, faces_seen, pad.per_model)


def judge_image(runtime: ModelRuntime, data: bytes, media: MediaSettings,
                faces: FaceSearchSettings, silent: SilentSettings) -> LivenessJudgement:
    """Runs in a model worker thread."""
    with runtime.metrics.timed("decode"):
        image = decode_image(runtime.decoders, data, media).image
    with runtime.metrics.timed("detection"):
        search = find_faces(runtime.detector(), runtime.presence(), image, faces)
    face = search.one_person(faces.ambiguous_face_ratio, "the image")
    return judge_face(runtime, image, face, len(search.faces), silent)
