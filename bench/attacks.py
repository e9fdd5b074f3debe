"""Synthesise presentation attacks from live photos: a print attack and a screen replay.

No real attack captures ship with shared/data, so the silent-liveness benchmark makes
its own, deterministic (seeded) and described in the README:

print attack   the photo is printed (CMYK halftone dot screens at 4 angles, paper
               white point and fibre texture), then photographed: a random perspective
               tilt of the sheet, optical blur, sensor noise, JPEG.
screen replay  the photo is shown on a display (resampled onto an RGB sub-pixel grid,
               display gamma and a cool colour cast) and photographed: slight scale and
               rotation against the camera's pixel grid (which produces moire), a
               specular glare patch, blur, sensor noise, JPEG.
"""

from __future__ import annotations

import cv2
import numpy as np


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                        cv2.IMREAD_COLOR)


def _perspective(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-amount, amount, (4, 2)) * np.float32([w, h])
    dst = (src + jitter).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def _halftone(img: np.ndarray, cell: float) -> np.ndarray:
    """Four rotated dot screens (C, M, Y, K) re-composited to BGR."""
    h, w = img.shape[:2]
    rgb = img[:, :, ::-1].astype(np.float32) / 255
    k = 1 - rgb.max(axis=2)
    denom = np.maximum(1 - k, 1e-6)
    cmy = [(1 - rgb[:, :, i] - k) / denom for i in range(3)]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inks = []
    for plane, angle in zip(cmy + [k], (15, 75, 0, 45)):
        a = np.deg2rad(angle)
        u = (xx * np.cos(a) + yy * np.sin(a)) / cell
        v = (-xx * np.sin(a) + yy * np.cos(a)) / cell
        # distance to the nearest dot centre; a dot's area grows with ink coverage
        d = np.hypot(u - np.round(u), v - np.round(v))
        inks.append((d < np.sqrt(np.clip(plane, 0, 1) / np.pi)).astype(np.float32))
    c, m, y, kk = inks
    out = np.stack([(1 - c), (1 - m), (1 - y)], axis=2) * (1 - kk[:, :, None])
    return (out[:, :, ::-1] * 255).astype(np.uint8)


def print_attack(img: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    dots = _halftone(img, cell=rng.uniform(1.6, 2.2)).astype(np.float32)
    # the camera resolves the dot screen only partly: part dots, part ink-averaged tone
    printed = 0.55 * cv2.GaussianBlur(dots, (0, 0), 0.7) + 0.45 * cv2.GaussianBlur(
        img.astype(np.float32), (0, 0), 1.0)
    paper = np.float32([235, 242, 245]) * rng.uniform(0.9, 1.0)  # warm-white sheet
    fibre = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    printed = printed / 255 * paper + (fibre * 6)[:, :, None]
    photo = _perspective(np.clip(printed, 0, 255).astype(np.uint8), rng, 0.06)
    photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.6, 1.2)).astype(np.float32)
    photo += rng.normal(0, 3, photo.shape)
    return _jpeg(np.clip(photo, 0, 255).astype(np.uint8), 85)


def screen_replay(img: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    # show the photo on a display: each display pixel becomes 3 sub-pixel stripes
    pitch = 3
    shown = cv2.resize(img, (w * pitch // 2, h * pitch // 2), interpolation=cv2.INTER_AREA)
    sh, sw = shown.shape[:2]
    display = np.zeros((sh * pitch, sw * pitch, 3), np.float32)
    for ch, offset in ((2, 0), (1, 1), (0, 2)):  # R, G, B stripes (BGR indices)
        display[:, offset::pitch, ch] = np.repeat(np.repeat(shown[:, :, ch], pitch, 0), 1, 1)
    display[::pitch] *= 0.6  # dark row gaps between pixel rows
    display *= 2.6  # each stripe carries one colour; the camera integrates them
    gamma = rng.uniform(0.8, 0.95)
    display = 255 * (display / 255) ** gamma * np.float32([1.08, 1.0, 0.9])  # cool cast
    # photograph it: scale and rotation against the camera grid alias into moire
    angle, scale = rng.uniform(-4, 4), w / display.shape[1] * rng.uniform(1.0, 1.08)
    matrix = cv2.getRotationMatrix2D((display.shape[1] / 2, display.shape[0] / 2), angle, scale)
    matrix[:, 2] += np.float32([w / 2 - display.shape[1] / 2, h / 2 - display.shape[0] / 2])
    photo = cv2.warpAffine(np.clip(display, 0, 255).astype(np.uint8), matrix, (w, h),
                           flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    photo = photo.astype(np.float32)
    # specular glare: a soft bright ellipse somewhere on the glass
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
    glare = np.exp(-(((xx - gx) / (0.25 * w)) ** 2 + ((yy - gy) / (0.12 * h)) ** 2))
    photo += (glare * rng.uniform(60, 120))[:, :, None]
    photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.5, 0.9))
    photo += rng.normal(0, 3, photo.shape)
    return _jpeg(np.clip(photo, 0, 255).astype(np.uint8), 85)


ATTACKS = {"print (synthetic)": print_attack, "screen replay (synthetic)": screen_replay}
