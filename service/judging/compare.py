"""Face comparison (typeId 21): main face per image, embedding, calibrated score.

The score is Platt scaling of the cosine similarity, fitted on labelled pairs
(bench/face_compare.py --calibrate): 100 * sigmoid(slope * cosine + intercept). It reads
as the probability, in percent, that the two faces are the same person on data like the
calibration set; the yes/no threshold is where it crosses 50.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from service.errors import LowQuality
from service.media.uploads import decode_image
from service.vision.detection import Detection
from service.vision.faces import FaceSearch, find_faces
from service.vision.runtime import ModelRuntime

if TYPE_CHECKING:  # the config is built from the parameter classes of modules like this
    from service.config import Config


@dataclass(frozen=True)
class CompareSettings:
    """Calibrated by bench/face_compare.py --calibrate (see the README).

    Score = 100 / (1 + exp(-(slope * cosine + intercept))): Platt scaling of the SFace
    cosine similarity fitted on the 242 labelled pairs of shared/data; the yes/no
    threshold is the cosine where the score crosses 50."""

    slope: float = 19.51
    intercept: float = -7.555

    @property
    def threshold(self) -> float:
        return -self.intercept / self.slope


@dataclass(frozen=True)
class FaceForComparison:
    face: Detection
    search: FaceSearch
    embedding: np.ndarray
    image_size: tuple[int, int]  # as sent; the face was found in a copy reduced by `scale`
    scale: float

    def detail(self) -> dict[str, object]:
        face_used = self.face.to_json()
        face_used["box"] = [round(v * self.scale) for v in self.face.box]  # the client's pixels
        return {
            "face_used": face_used,
            "faces_seen": len(self.search.faces),
            "candidates": self.search.candidates,
            "image_size": list(self.image_size),
        }


def main_face(search: FaceSearch, cfg: Config, label: str) -> Detection:
    """The largest confirmed face; refuse when the choice is ambiguous or too small."""
    face = search.one_person(cfg.faces.ambiguous_face_ratio, label)
    if face.eye_distance * 2.5 < cfg.faces.compare_min_face_px:
        raise LowQuality(f"the face in {label} is too small to compare")
    return face


def prepare_face(runtime: ModelRuntime, data: bytes, cfg: Config, label: str) -> FaceForComparison:
    """Decode, find and embed the main face (runs in a model worker thread)."""
    metrics = runtime.metrics
    with metrics.timed("decode"):
        decoded = decode_image(runtime.decoders, data, cfg.media)
    image = decoded.image
    with metrics.timed("detection"):
        search = find_faces(runtime.detector(), runtime.presence(), image, cfg.faces)
    face = main_face(search, cfg, label)
    with metrics.timed("comparison"):
        embedding = runtime.embedder()(image, face)
    return FaceForComparison(face, search, embedding, decoded.original_size, decoded.scale)


def match_score(cosine: float, cfg: Config) -> tuple[bool, int]:
    """(same person?, 0-100 score) with the rounded score on the same side of 50."""
    params = cfg.compare
    same = cosine >= params.threshold
    z = params.slope * cosine + params.intercept
    score = 100.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    rounded = int(round(score))
    return same, max(50, rounded) if same else min(49, rounded)
