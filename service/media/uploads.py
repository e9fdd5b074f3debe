"""Client media in the service process: tell images from videos by their bytes, refuse
the formats we do not decode, and have the rest decoded in a worker process.

Why sniff bytes: typeId 3035 serves both silent (image) and video liveness, and the
contract says the bytes decide, never a file name.

Why refuse before any decoder runs: every accepted format exposes a native parser to any
API key holder. We accept the five the service promises (JPEG, PNG, WebP, BMP, TIFF) and
answer 4002 for the rest. JPEG 2000 included: the spec allows it "where the decoder
supports it", and we say ours does not (OpenJPEG crashed on malformed headers, issue 10).

Why a worker process: the service never runs an image or video-file decoder on client
bytes itself (service.media.pool); a decoder crash costs that request a 4002, nothing
more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from service.errors import BadMedia
from service.media.frames import ClipSettings, Frame, video_parts
from service.media.images import ImageSettings, image_parts
from service.media.pool import DecoderPool, SandboxSettings

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
class MediaSettings:
    # Spec limit for images: 100 MP, read from the decoder's own header (4013 past it).
    max_image_pixels: int = 100_000_000
    # Images are decoded at most this long (longest side; JPEGs over twice this are
    # decoded at 1/2, 1/4 or 1/8 scale): the largest of the face search's `detect_sides`,
    # so face finding sees the same pixels as with the full image.
    image_work_side: int = 4000
    # Decoded samples one image may need (width x height x bands x bytes per sample, at
    # the size actually decoded), checked before decoding (4013 past it): 256 MB admits
    # an 85 MP RGB scan and refuses a 10000x10000 RGB PNG (286 MB). JPEGs are decoded
    # reduced first, so a 100 MP JPEG costs 72 MB.
    decode_memory_budget_mb: int = 256
    # A decoder worker that sends nothing for this long (an image, or the next video
    # frame) is killed and the request answers 4002: a 12 MP JPEG decodes in ~0.25 s,
    # an 85 MP PNG in ~1.3 s and a 1080p frame in milliseconds here, so 10 s only ever
    # cuts a stuck decoder.
    decode_timeout_s: float = 10.0
    # Memory a worker may write (RLIMIT_DATA) during a job; past it the decoder fails
    # inside the worker (4013). Its imports take ~95 MB; the largest image the budget
    # above admits, as Pillow stores it (4 bytes/pixel) plus its reduced copy, fits.
    decode_worker_memory_mb: int = 1024
    # Uploaded videos: frames analysed per second (clips at higher rates are sampled
    # evenly by time) and the working resolution (longest side): blinks last 100-400 ms,
    # so 15 fps sees each one in 2-6 frames; 640 px keeps a webcam face above 150 px wide.
    analysis_fps: float = 15.0
    work_side: int = 640
    video: ClipSettings = field(default_factory=ClipSettings)


@dataclass(frozen=True)
class DecodedImage:
    # BGR uint8, longest side at most MediaSettings.image_work_side
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


def _sandbox_limits(settings: MediaSettings, max_side: int) -> SandboxSettings:
    return SandboxSettings(timeout_s=settings.decode_timeout_s,
                         memory_bytes=settings.decode_worker_memory_mb * _MB, max_side=max_side)


def decode_image(decoders: DecoderPool, data: bytes, settings: MediaSettings) -> DecodedImage:
    """Decode an accepted image in the calling thread's decoder worker.

    4002 for any other format (before a decoder sees it), for bytes the decoder refuses
    and when the worker dies on them; 4013 over the pixel limit or the memory budget.
    """
    name = image_format(data)
    if name is None:
        raise BadMedia(f"not a supported image format ({ACCEPTED_IMAGES})")
    limits = ImageSettings(max_pixels=settings.max_image_pixels,
                         memory_budget=settings.decode_memory_budget_mb * _MB,
                         work_side=settings.image_work_side)
    parts = decoders.local().run(image_parts, data, (name, limits),
                                 _sandbox_limits(settings, settings.image_work_side), "image")
    ((meta, image),) = parts
    width, height = meta["size"]
    return DecodedImage(image, (int(width), int(height)))


def decode_video(decoders: DecoderPool, data: bytes, settings: MediaSettings
                 ) -> Iterator[Frame]:
    """Frames sampled at `settings.analysis_fps`, at most `settings.work_side` px long,
    decoded in the calling thread's decoder worker and yielded as they arrive (see
    service.media.frames for the sampling and the limits). 4002 when the worker dies."""
    params = (settings.analysis_fps, settings.work_side, settings.video)
    parts = decoders.local().run(video_parts, data, params,
                                 _sandbox_limits(settings, settings.work_side), "video")
    for meta, image in parts:
        yield Frame(index=int(meta["index"]), t=float(meta["t"]), image=image)
