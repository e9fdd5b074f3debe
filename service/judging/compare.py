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

from service.errors import LowQuality
from service.media.uploads import MediaSettings, decode_image
from service.vision.detection import Detection
from service.vision.faces import FaceSearch, FaceSearchSettings, find_faces
from service.vision.runtime import ModelRuntime


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


def main_face(search: FaceSearch, faces: FaceSearchSettings, label: str) -> Detection:
    """The largest confirmed face; refuse when the choice is ambiguous or too small."""
    face = search.one_person(faces.ambiguous_face_ratio, label)
    if face.eye_distance * 2.5 < faces.compare_min_face_px:
        raise LowQuality(f"the face in {label} is too small to compare")
    return face


def prepare_face(runtime: ModelRuntime, data: bytes, media: MediaSettings,
                 faces: FaceSearchSettings, label: str) -> FaceForComparison:
    """Decode, find and embed the main face (runs in a model worker thread)."""
    metrics = runtime.metrics
    with metrics.timed("decode"):
        decoded = decode_image(runtime.decoders, data, media)
    image = decoded.image
    with metrics.timed("detection"):
        search = find_faces(runtime.detector(), runtime.presence(), image, faces)
    face = main_face(search, faces, label)
    with metrics.timed("comparison"):
        embedding = runtime.embedder()(image, face)
    return FaceForComparison(face, search, embedding, decoded.original_size, decoded.scale)


def match_score(cosine: float, params: CompareSettings) -> tuple[bool, int]:
    """(same person?, 0-100 score) with the rounded score on the same side of 50."""
    same = cosine >= params.threshold
    z = params.slope * cosine + params.intercept
    score = 100.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    rounded = int(round(score))
    return same, max(50, rounded) if same else min(49, rounded)


def portrait_embedding(runtime: ModelRuntime, data: bytes, media: MediaSettings,
                       faces: FaceSearchSettings) -> tuple[np.ndarray, dict[str, object]]:
    """A session's ID portrait: its main face's embedding and detail (the image itself
    is not kept)."""
    prepared = prepare_face(runtime, data, media, faces, "the portrait")
    return prepared.embedding, prepared.detail()
