"""Presentation-attack detection (PAD) with the two MiniFASNet models, as published.

Why these models: they are the only PAD weights we may ship (Apache-2.0, provided in
shared/models); the install step converts the legacy PyTorch files to ONNX once
(models/minifasnet.py), so the service runs them with onnxruntime and no torch.

Use as the publisher does (Silent-Face-Anti-Spoofing, src/generate_patches.py and
test.py): expand the face box by each model's scale around its centre (capped so the
expanded box fits the image, then shifted inside it), resize to 80x80, feed BGR 0-255,
softmax over 3 classes, class 1 = real face, average the two models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

# (manifest model name, box scale) in the publisher's file names: 2.7_80x80, 4_0_0_80x80
PAD_MODELS = (("pad_minifasnet_v2", 2.7), ("pad_minifasnet_v1se", 4.0))
INPUT_SIDE = 80


def expanded_box(box: tuple[float, float, float, float], image_w: int, image_h: int,
                 scale: float) -> tuple[int, int, int, int]:
    """The publisher's CropImage._get_new_box: (x0, y0, x1, y1), inclusive ends."""
    x, y, w, h = box
    w, h = max(w, 1.0), max(h, 1.0)
    scale = min((image_h - 1) / h, (image_w - 1) / w, scale)
    new_w, new_h = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    left, top = cx - new_w / 2, cy - new_h / 2
    right, bottom = cx + new_w / 2, cy + new_h / 2
    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > image_w - 1:
        left -= right - image_w + 1
        right = image_w - 1
    if bottom > image_h - 1:
        top -= bottom - image_h + 1
        bottom = image_h - 1
    return int(left), int(top), int(right), int(bottom)


def pad_crop(bgr: np.ndarray, box: tuple[float, float, float, float], scale: float
             ) -> np.ndarray:
    h, w = bgr.shape[:2]
    x0, y0, x1, y1 = expanded_box(box, w, h, scale)
    crop = bgr[y0:y1 + 1, x0:x1 + 1]
    return cv2.resize(crop, (INPUT_SIDE, INPUT_SIDE))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class PadScore:
    live_probability: float  # averaged softmax of class 1 over the models
    per_model: tuple[float, ...]


class PresentationAttackDetector:
    """Not shared across threads: one instance per model worker (see ModelRuntime)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        options = ort.SessionOptions()
        # our worker threads give the parallelism; ORT's own pool would oversubscribe
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._models = [
            (ort.InferenceSession(str(paths[name]), options,
                                  providers=["CPUExecutionProvider"]), scale)
            for name, scale in PAD_MODELS
        ]

    def __call__(self, bgr: np.ndarray, box: tuple[float, float, float, float]) -> PadScore:
        scores = []
        for session, scale in self._models:
            crop = pad_crop(bgr, box, scale)
            blob = crop.transpose(2, 0, 1)[None].astype(np.float32)
            logits = session.run(None, {"input": blob})[0]
            scores.append(float(softmax(logits)[0, 1]))
        return PadScore(float(np.mean(scores)), tuple(scores))
