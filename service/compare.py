"""Face comparison (typeId 21): main face per image, embedding, calibrated score.

The score is Platt scaling of the cosine similarity, fitted on labelled pairs
(bench/face_compare.py --calibrate): 100 * sigmoid(slope * cosine + intercept). It reads
as the probability, in percent, that the two faces are the same person on data like the
calibration set; the yes/no threshold is where it crosses 50.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from service.api.media import decode_image
from service.config import Config
from service.errors import LowQuality
from service.vision.detection import Detection
from service.vision.faces import FaceSearch, FaceSearchParams, find_faces
from service.vision.runtime import ModelRuntime


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


def search_params(cfg: Config) -> FaceSearchParams:
    return FaceSearchParams(cfg.face_score, cfg.refine_score, cfg.refine_iou,
                            cfg.presence_score, cfg.detect_sides)


def main_face(search: FaceSearch, cfg: Config, label: str) -> Detection:
    """The largest confirmed face; refuse when the choice is ambiguous or too small."""
    face = search.one_person(cfg.ambiguous_face_ratio, label)
    if face.eye_distance * 2.5 < cfg.min_face_px:
        raise LowQuality(f"the face in {label} is too small to compare")
    return face


def prepare_face(runtime: ModelRuntime, data: bytes, cfg: Config, label: str) -> FaceForComparison:
    """Decode, find and embed the main face (runs in a model worker thread)."""
    decoded = decode_image(runtime.decoders, data, cfg)
    image = decoded.image
    search = find_faces(runtime.detector(), runtime.presence(), image, search_params(cfg))
    face = main_face(search, cfg, label)
    embedding = runtime.embedder()(image, face)
    return FaceForComparison(face, search, embedding, decoded.original_size, decoded.scale)


def match_score(cosine: float, cfg: Config) -> tuple[bool, int]:
    """(same person?, 0-100 score) with the rounded score on the same side of 50."""
    same = cosine >= cfg.compare_threshold
    z = cfg.compare_slope * cosine + cfg.compare_intercept
    score = 100.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    rounded = int(round(score))
    return same, max(50, rounded) if same else min(49, rounded)
