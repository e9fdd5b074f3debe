"""Make small test videos in memory with PyAV (still photos as video, splices, noise)."""

from __future__ import annotations

import io
from collections.abc import Iterable

import av
import cv2
import numpy as np


def encode(frames: Iterable[np.ndarray], fps: int = 15, codec: str = "libx264",
           container: str = "mp4") -> bytes:
    """BGR frames -> video bytes (even sizes required by yuv420p)."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as box:
        stream = None
        for image in frames:
            if stream is None:
                stream = box.add_stream(codec, rate=fps)
                stream.width, stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
            image = np.ascontiguousarray(image[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                box.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                box.mux(packet)
    return out.getvalue()


def still(image: np.ndarray, seconds: float, fps: int = 15) -> list[np.ndarray]:
    return [image] * int(seconds * fps)


def held_photo(image: np.ndarray, seconds: float, fps: int = 15) -> list[np.ndarray]:
    """A photo held up to the camera and tilted back and forth: a perspective warp that
    changes smoothly over time, like a sheet rotating about its vertical axis."""
    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    frames = []
    for i in range(int(seconds * fps)):
        a = 0.2 * np.sin(2 * np.pi * i / (fps * 2.0))  # +-20% foreshortening (a sheet tilted ~35 degrees), 2 s period
        dst = np.float32([[w * max(a, 0), h * max(a, 0) * 0.5],
                          [w - w * max(-a, 0), h * max(-a, 0) * 0.5],
                          [w - w * max(-a, 0), h - h * max(-a, 0) * 0.5],
                          [w * max(a, 0), h - h * max(a, 0) * 0.5]])
        matrix = cv2.getPerspectiveTransform(src, dst)
        frames.append(cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return frames


def decode_all(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data), metadata_errors="ignore") as box:
        return [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
