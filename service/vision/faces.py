"""Find the faces in a photo and pick the main one, robust to documents and group photos.

Two ideas make this reliable on real uploads:
- a size pyramid: detect on a small copy first (fast for selfies) and only look at
  larger copies when no face is confirmed, so small faces in big photos are still found;
- confirmation: each candidate is re-detected in a crop centred on it at a canonical
  face size (~128 px), by YuNet again and by an independent detector (BlazeFace). Real
  faces come back from both with a high score and the same box (and with more precise
  landmarks, which alignment needs); false faces seen in document guilloches (the BDR
  specimen passport) or in a painting behind the person (biden2.jpg) do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.errors import NoFace, SeveralFaces
from service.vision.detection import Detection, FaceDetector, iou
from service.vision.presence import FacePresence
from service.vision.shrink import shrink

# Crop side = this many times the candidate's larger box side, resized to CONFIRM_SIDE.
CONFIRM_CONTEXT = 2.0
CONFIRM_SIDE = 256
MAX_CANDIDATES = 12


@dataclass(frozen=True)
class FaceSearchSettings:
    """Calibrated on shared/data (faces, id_documents, multi_face); see the README's
    "Main face" choice."""

    # YuNet score a detection needs to count as a face. 0.6 is OpenCV Zoo's default; the
    # refinement pass below removes the confident false faces that remain.
    face_score: float = 0.6
    # A candidate is confirmed when the detector finds it again in a crop centred on it
    # and resized so the face is ~128 px: false faces on document guilloche patterns (the
    # BDR specimen) vanish there, real faces come back with score >= 0.7 and IoU >= 0.4.
    refine_score: float = 0.7
    refine_iou: float = 0.4
    # ... and BlazeFace must agree on that crop. On shared/data real faces score 0.79-0.93
    # (the LVA booklet portrait is the lowest), confirmed-by-YuNet false faces 0-0.55.
    presence_score: float = 0.65
    # Image sizes (longest side) tried in turn until a confirmed face is found: fast on
    # selfies, still finds a 40 px face in a 4000 px group photo.
    detect_sides: tuple[int, ...] = (320, 1600, 4000)
    # Second face this fraction of the main face's area or larger -> "several faces" where
    # one is required (a selfie with two people); a document's small ghost portrait is ~0.1.
    ambiguous_face_ratio: float = 0.7
    # Faces narrower than this (pixels, eye to eye * 2.5 ~ face width) cannot be compared.
    compare_min_face_px: int = 32


@dataclass(frozen=True)
class FaceSearch:
    faces: list[Detection]  # confirmed faces, largest first
    candidates: int  # detections above face_score before confirmation
    side: int  # longest side of the pass that found them (0: none found)

    def one_person(self, ambiguous_ratio: float, label: str) -> Detection:
        """The main (largest) face; NoFace, or SeveralFaces when a second face is nearly
        as large (two people), since guessing whom the caller meant would be wrong."""
        if not self.faces:
            raise NoFace(f"no face found in {label}")
        main = self.faces[0]
        if len(self.faces) > 1 and self.faces[1].area >= ambiguous_ratio * main.area:
            raise SeveralFaces(
                f"{label} shows {len(self.faces)} faces of similar size; send one person"
            )
        return main


@dataclass(frozen=True)
class Refined:
    """A face re-detected in a crop: the detection in source pixels, and the crop it
    was found in (source pixels -> crop: minus `origin`, times `scale`)."""

    face: Detection
    crop: np.ndarray
    scale: float
    origin: tuple[int, int]

    def in_crop(self, box: tuple[float, float, float, float]
                ) -> tuple[float, float, float, float]:
        x, y, w, h = box
        x0, y0 = self.origin
        return (x - x0) * self.scale, (y - y0) * self.scale, w * self.scale, h * self.scale


def refine(detector: FaceDetector, bgr: np.ndarray, cand: Detection,
           params: FaceSearchSettings) -> Refined | None:
    """Re-detect `cand` in a crop centred on it, resized so the face is ~128 px: the
    detection overlapping it most; None when nothing there overlaps it enough.

    This is also how a face already located some other way (a stream's FaceMesh
    landmarks) gets YuNet's box and five points, which the PAD models were calibrated
    with and the embedder aligns by: ~4 ms on the crop, where a search of the whole
    frame and its confirmation cost ~12."""
    h, w = bgr.shape[:2]
    x, y, bw, bh = cand.box
    half = CONFIRM_CONTEXT * max(bw, bh) / 2
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = CONFIRM_SIDE / max(x1 - x0, y1 - y0)
    if scale < 1:
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        crop = shrink(bgr[y0:y1, x0:x1], size)
    else:
        crop = cv2.resize(bgr[y0:y1, x0:x1], None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_LINEAR)
    best: Detection | None = None
    best_iou = 0.0
    for det in detector(crop):
        mapped = det.shifted(x0, y0, scale)
        overlap = iou(mapped.box, cand.box)
        if overlap > best_iou:
            best, best_iou = mapped, overlap
    if best is None or best_iou < params.refine_iou:
        return None
    return Refined(best, crop, scale, (x0, y0))


def confirm(detector: FaceDetector, presence: FacePresence, bgr: np.ndarray,
            cand: Detection, params: FaceSearchSettings) -> Detection | None:
    """Re-detect `cand` in a crop around it; the refined detection, or None if not a face."""
    refined = refine(detector, bgr, cand, params)
    if refined is None or refined.face.score < params.refine_score:
        return None
    rgb = cv2.cvtColor(refined.crop, cv2.COLOR_BGR2RGB)
    if presence(rgb, refined.in_crop(cand.box)) < params.presence_score:
        return None
    return refined.face


def _dedupe(faces: list[Detection]) -> list[Detection]:
    kept: list[Detection] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(iou(face.box, k.box) < 0.5 for k in kept):
            kept.append(face)
    return sorted(kept, key=lambda f: f.area, reverse=True)


def find_faces(detector: FaceDetector, presence: FacePresence, bgr: np.ndarray,
               params: FaceSearchSettings) -> FaceSearch:
    longest = max(bgr.shape[:2])
    candidates = 0
    tried: set[int] = set()
    for side in params.detect_sides:
        side = min(side, longest)
        if side in tried:
            continue
        tried.add(side)
        raw = [d for d in detector(bgr, side) if d.score >= params.face_score]
        raw.sort(key=lambda d: d.area * d.score, reverse=True)
        candidates = max(candidates, len(raw))
        confirmed = [f for f in (confirm(detector, presence, bgr, d, params)
                                 for d in raw[:MAX_CANDIDATES]) if f is not None]
        if confirmed:
            return FaceSearch(faces=_dedupe(confirmed), candidates=len(raw), side=side)
        if side >= longest:
            break
    return FaceSearch(faces=[], candidates=candidates, side=0)
