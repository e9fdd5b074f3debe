"""Client media in the service process: tell images from videos by their bytes, refuse
the formats we do not decode, and have the rest decoded in a worker process.

Why sniff bytes: typeId 3035 serves both silent (image) and video liveness, and the
contract says the bytes decide, never a file name.

Why refuse before any decoder runs: every accepted format exposes a native parser to any
API key holder. We accept the five the service promises (JPEG, PNG, WebP, BMP, TIFF) and
answer 4002 for the rest. JPEG 2000 included: the spec allows it "where the decoder
supports it", and we say ours does not (OpenJPEG crashed on malformed headers, issue 10).

Why a worker process: the service never runs an image or video-file decoder on client
bytes itself (service.decoding.pool); a decoder crash costs that request a 4002, nothing
more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np

from service.config import Config
from service.decoding.images import ImageLimits, image_parts
from service.decoding.pool import DecoderPool, SandboxLimits
from service.errors import BadMedia
from service.video.frames import Frame, VideoLimits, video_parts

ACCEPTED_IMAGES = "JPEG, PNG, WebP, BMP, TIFF"
_MB = 1024 * 1024


class MediaKind(Enum):
    IMAGE = "image"
    VIDEO = "video"
    UNKNOWN = "unknown"


# Magic numbers of the accepted image formats, with their names as Pillow knows them.
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),  # little-endian
    (b"MM\x00*", "TIFF"),  # big-endian
)
_VIDEO_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # MP4 / MOV / 3GP
    (4, b"moov"),  # old QuickTime
    (4, b"mdat"),
    (4, b"wide"),
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x00\x00\x01\xb3"),  # MPEG-1/2 elementary video
    (0, b"FLV"),
    (0, b"OggS"),
)


@dataclass(frozen=True)
class DecodedImage:
    # BGR uint8, longest side at most Config.image_work_side
    image: np.ndarray
    # (width, height) of the image as sent, EXIF orientation applied
    original_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Original pixels per working-image pixel (1.0 unless the image was reduced)."""
        return self.original_size[0] / self.image.shape[1]


def image_format(data: bytes) -> str | None:
    """The accepted image format `data` starts with, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _IMAGE_MAGIC if data.startswith(magic)), None)


def sniff(data: bytes) -> MediaKind:
    head = data[:32]
    if image_format(head):
        return MediaKind.IMAGE
    if head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return MediaKind.VIDEO
    if any(head[off:off + len(magic)] == magic for off, magic in _VIDEO_MAGIC):
        return MediaKind.VIDEO
    if len(data) > 376 and data[0] == 0x47 and data[188] == 0x47 and data[376] == 0x47:
        return MediaKind.VIDEO  # MPEG transport stream: sync byte every 188 bytes
    return MediaKind.UNKNOWN


def _sandbox_limits(cfg: Config, max_side: int) -> SandboxLimits:
    return SandboxLimits(timeout_s=cfg.decode_timeout_s,
                         memory_bytes=cfg.decode_worker_memory_mb * _MB, max_side=max_side)


def decode_image(decoders: DecoderPool, data: bytes, cfg: Config) -> DecodedImage:
    """Decode an accepted image in the calling thread's decoder worker.

    4002 for any other format (before a decoder sees it), for bytes the decoder refuses
    and when the worker dies on them; 4013 over the pixel limit or the memory budget.
    """
    name = image_format(data)
    if name is None:
        raise BadMedia(f"not a supported image format ({ACCEPTED_IMAGES})")
    limits = ImageLimits(max_pixels=cfg.max_image_pixels,
                         memory_budget=cfg.decode_memory_budget_mb * _MB,
                         work_side=cfg.image_work_side)
    parts = decoders.local().run(image_parts, data, (name, limits),
                                 _sandbox_limits(cfg, cfg.image_work_side), "image")
    ((meta, image),) = parts
    width, height = meta["size"]
    return DecodedImage(image, (int(width), int(height)))


def decode_video(decoders: DecoderPool, data: bytes, cfg: Config, limits: VideoLimits
                 ) -> Iterator[Frame]:
    """Frames sampled at `cfg.analysis_fps`, at most `cfg.work_side` px long, decoded in
    the calling thread's decoder worker and yielded as they arrive (see
    service.video.frames for the sampling and the limits). 4002 when the worker dies."""
    parts = decoders.local().run(video_parts, data, (cfg.analysis_fps, cfg.work_side, limits),
                                 _sandbox_limits(cfg, cfg.work_side), "video")
    for meta, image in parts:
        yield Frame(index=int(meta["index"]), t=float(meta["t"]), image=image)
