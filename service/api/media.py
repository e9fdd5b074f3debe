"""Tell images from videos by their bytes, and decode images within limits.

Why sniff bytes: typeId 3035 serves both silent (image) and video liveness, and the
contract says the bytes decide, never a file name. Image dimensions are read from the
header before decoding so a decompression bomb is refused (4013) without allocating it.
"""

from __future__ import annotations

import io
import warnings
from enum import Enum

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from service.errors import BadMedia, TooLarge


class MediaKind(Enum):
    IMAGE = "image"
    VIDEO = "video"
    UNKNOWN = "unknown"


_IMAGE_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"BM"),  # BMP
    (0, b"II*\x00"),  # TIFF little-endian
    (0, b"MM\x00*"),  # TIFF big-endian
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n"),  # JPEG 2000 (JP2 container)
    (0, b"\xff\x4f\xff\x51"),  # JPEG 2000 codestream (J2K/JPC)
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


def sniff(data: bytes) -> MediaKind:
    head = data[:32]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return MediaKind.IMAGE
    if head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return MediaKind.VIDEO
    if any(head[off:off + len(magic)] == magic for off, magic in _IMAGE_MAGIC):
        return MediaKind.IMAGE
    if any(head[off:off + len(magic)] == magic for off, magic in _VIDEO_MAGIC):
        return MediaKind.VIDEO
    if len(data) > 376 and data[0] == 0x47 and data[188] == 0x47 and data[376] == 0x47:
        return MediaKind.VIDEO  # MPEG transport stream: sync byte every 188 bytes
    return MediaKind.UNKNOWN


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header only; BadMedia when no image header is readable."""
    try:
        with warnings.catch_warnings():
            # our own max_image_pixels check follows; Pillow's warning would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Image.DecompressionBombError:
        raise TooLarge("image has too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadMedia("not a decodable image") from None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode JPEG/PNG/BMP/TIFF/WebP/JPEG 2000 bytes to an 8-bit BGR array.

    EXIF orientation is applied (phones store portraits rotated); alpha is dropped,
    greyscale and 16-bit images are converted.
    """
    if sniff(data) is not MediaKind.IMAGE:
        raise BadMedia("not a supported image format (JPEG, PNG, BMP, TIFF, WebP, JPEG 2000)")
    width, height = image_size(data)
    if width * height > max_pixels:
        raise TooLarge(f"image has {width}x{height} pixels, the limit is {max_pixels}")
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        img = _decode_with_pillow(data)
    if img is None or img.size == 0:
        raise BadMedia("image data is corrupt or truncated")
    return img


def _decode_with_pillow(data: bytes) -> np.ndarray | None:
    """Fallback for the few variants OpenCV refuses (e.g. some TIFF compressions)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError):
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])
