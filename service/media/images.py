"""Decode one client image inside a decoder worker: Pillow, the promised formats only,
at a bounded working size.

Why Pillow rather than cv2.imdecode: the size checked against the limits must come from
the header of the very parser that decodes (issue 10: Pillow read a JP2's size from its
`ihdr` box while OpenCV decoded the codestream's, 60000x60000), and Pillow can open a
file, report its size and mode, and stop there; `draft` then lets libjpeg decode a large
JPEG already reduced (DCT scaling), so its cost follows the answer's size, not the
header's claim.

Runs only in a worker process (service.media.pool); the service process never decodes
client bytes itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageMode

from service.errors import ApiError, BadMedia, TooLarge

# Our checks (ImageSettings, before decoding) replace Pillow's own (a warning at 89 MP, an
# error at 179 MP), so the configured limit is the one that applies.
Image.MAX_IMAGE_PIXELS = None

# Pillow's names for the formats the service promises (README: API).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")

# EXIF Orientation (tag 0x0112, TIFF 6.0) -> the transposition that shows the image
# upright; 1 (or none) is upright already. The table of Pillow's ImageOps.exif_transpose.
ORIENTATION_TAG = 0x0112
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
# 16-bit greyscale as Pillow opens it from PNG and TIFF.
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True)
class ImageSettings:
    # Pixels the header may claim (the spec's 100 MP): over it -> 4013, nothing decoded.
    max_pixels: int
    # Bytes of decoded samples (width x height x bands x bytes per sample, at the size
    # actually decoded) one request may cost: over it -> 4013, nothing decoded.
    memory_budget: int
    # Longest side of the image handed back; larger images are reduced.
    work_side: int


def image_parts(data: bytes, params: tuple[str, ImageSettings]
                ) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """The decoder-pool job: one part, the BGR image, with the original size as meta."""
    image_format, limits = params
    size, image = decode_image(data, image_format, limits)
    yield {"size": list(size)}, image


def decode_image(data: bytes, image_format: str, limits: ImageSettings
                 ) -> tuple[tuple[int, int], np.ndarray]:
    """((width, height) as sent, EXIF orientation applied; BGR uint8 image with its longest
    side at most `limits.work_side`).

    Raises TooLarge when the header claims too many pixels or the decoded samples would
    exceed the memory budget (both before decoding), BadMedia when Pillow cannot read it.

    Any exception Pillow raises while parsing is a file it cannot read (BadMedia, 4002),
    whatever its type: its parsers raise OSError, SyntaxError and ValueError by design,
    but struct.error, TypeError, AttributeError, KeyError or IndexError escape from
    hostile tag values (issue 20: fuzzed EXIF answered 5000 as "a bug in our decoder").
    The worker's "bug" answer (5000) stays for the other jobs (video frames, bodies).
    """
    if image_format not in ACCEPTED_FORMATS:
        raise BadMedia(f"{image_format} images are not accepted")
    try:
        with Image.open(io.BytesIO(data), formats=[image_format]) as img:
            width, height = img.size
            if width * height > limits.max_pixels:
                raise TooLarge(f"image has {width}x{height} pixels, the limit is "
                               f"{limits.max_pixels}")
            if any(not isinstance(tile.offset, int) for tile in img.tile):
                # Pillow's TIFF reader takes StripOffsets of any field type (a DOUBLE, a
                # string) as file offsets, and load() then fails with a TypeError.
                raise BadMedia("image data offsets are malformed")
            target = _fitted((width, height), limits.work_side)
            if target != (width, height):
                img.draft(None, target)  # JPEG only: decode at 1/2, 1/4 or 1/8 scale
            needed = _decoded_bytes(img)
            if needed > limits.memory_budget:
                raise TooLarge(f"a {width}x{height} {img.mode} image needs "
                               f"{needed // 2**20} MB to decode, the limit is "
                               f"{limits.memory_budget // 2**20} MB")
            img.load()
            upright = _orientation(img)
            if upright is not None:  # phones store portraits rotated
                img = img.transpose(upright)
                if upright in _SWAPS_SIDES:
                    width, height = height, width
            return (width, height), _to_bgr(img, limits.work_side)
    except (ApiError, MemoryError):  # ours (4002/4013), and the worker's limit (4013)
        raise
    except Exception:  # noqa: BLE001 - see the docstring: hostile bytes, any exception
        raise BadMedia("image data is corrupt, truncated or of an unsupported kind") from None


_SWAPS_SIDES = (Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270,
                Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90)


def _orientation(img: Image.Image) -> Image.Transpose | None:
    """The transposition the image's EXIF (or XMP, for PNG) orientation asks for; None
    when there is none, or when the metadata does not parse.

    Why not ImageOps.exif_transpose: after rotating it writes the whole EXIF block back
    (and rewrites the XMP), and Pillow's EXIF writer raises struct.error or
    AttributeError on tag values its reader accepted: one integer is all we need. Why
    ignore metadata that does not parse rather than refuse the image: the pixels decoded
    and are what is analysed; a wrong orientation at worst hides the face (4003), as a
    photo taken sideways does.
    """
    try:
        value = img.getexif().get(ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - Pillow's EXIF/XMP readers on hostile bytes
        return None
    return _UPRIGHT.get(value) if type(value) is int else None


def _fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled so its longest side is at most `side` (never enlarged)."""
    width, height = size
    longest = max(width, height)
    if longest <= side:
        return size
    return max(1, round(width * side / longest)), max(1, round(height * side / longest))


def _decoded_bytes(img: Image.Image) -> int:
    mode = ImageMode.getmode(img.mode)
    bytes_per_sample = int(mode.typestr[-1])  # "|u1", "<u2", "<i4", "<f4"
    return img.width * img.height * len(mode.bands) * bytes_per_sample


def _to_bgr(img: Image.Image, side: int) -> np.ndarray:
    """8-bit BGR at most `side` px long: reduced first (BOX = area averaging, like
    cv2.INTER_AREA) so conversions work on the small image; 16-bit and float samples
    are scaled into 0-255, not clipped."""
    high_bit = img.mode in _SIXTEEN_BIT or img.mode in ("I", "F")
    if not high_bit and img.mode not in ("L", "RGB"):
        img = img.convert("RGB")  # palette, alpha (dropped), CMYK, YCbCr, 1-bit...
    size = _fitted(img.size, side)
    if size != img.size:
        img = img.resize(size, Image.Resampling.BOX)
    if img.mode == "RGB":  # Pillow packs BGR itself: one pass, not a copy and a swap
        bgr = np.frombuffer(img.tobytes("raw", "BGR"), np.uint8)
        return bgr.reshape(img.height, img.width, 3)
    samples = np.asarray(img)
    if img.mode in _SIXTEEN_BIT:
        grey = (samples >> 8).astype(np.uint8)
    elif img.mode == "I":  # 32-bit integers: read as 16-bit samples, as PNG/TIFF carry them
        grey = (np.clip(samples, 0, 65535) >> 8).astype(np.uint8)
    elif img.mode == "F":  # floating-point TIFF: 0.0-1.0 by convention
        grey = np.round(np.clip(samples, 0.0, 1.0) * 255).astype(np.uint8)
    else:
        grey = samples
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
