"""Media for the fuzz cases: real photos and clips from shared/data, small files of every
format Pillow and PyAV can write, and the byte-level mutations applied to them.

Why real files: the decoders' interesting paths (progressive JPEG, H.264 with B-frames,
Indeo AVI, MPEG-1) are only reached by real encoders' output. Why generated files: the
formats the service may refuse (GIF, ICO, PDF...) or must handle with care (JPEG 2000,
TIFF, BMP, WebP) are absent from shared/data. Header patches are written by hand from
each format's specification so a small file can claim a huge size or a broken layout.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image

# ---- byte-level mutations ---------------------------------------------------------------


def flip_bytes(data: bytes, rng: random.Random, count: int | None = None,
               keep_head: int = 0) -> bytes:
    """Random bytes overwritten (a bit rot / a hostile encoder); the first keep_head
    bytes (the magic number) stay so the file still reaches its decoder."""
    if len(data) <= keep_head:
        return data
    out = bytearray(data)
    for _ in range(count or rng.randint(1, 40)):
        out[rng.randrange(keep_head, len(out))] = rng.randrange(256)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    """Cut anywhere: an interrupted upload."""
    return data[: rng.randrange(0, max(1, len(data)))]


def insert_garbage(data: bytes, rng: random.Random) -> bytes:
    """Random bytes inserted in the middle: every later offset and length is wrong."""
    at = rng.randrange(0, max(1, len(data)))
    return data[:at] + rng.randbytes(rng.randint(1, 512)) + data[at:]


def repeat_chunk(data: bytes, rng: random.Random) -> bytes:
    """A slice duplicated in place: chunks/boxes/NAL units seen twice."""
    if len(data) < 4:
        return data * 2
    a = rng.randrange(0, len(data) - 1)
    b = min(len(data), a + rng.randint(1, 4096))
    return data[:b] + data[a:b] * rng.randint(1, 8) + data[b:]


def zero_range(data: bytes, rng: random.Random) -> bytes:
    """A run of zero bytes: lengths and sizes read as 0."""
    if not data:
        return data
    a = rng.randrange(0, len(data))
    b = min(len(data), a + rng.randint(1, 2048))
    return data[:a] + bytes(b - a) + data[b:]


MUTATIONS = (flip_bytes, truncate, insert_garbage, repeat_chunk, zero_range)


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One to three stacked mutations; returns the bytes and their names."""
    names = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        fn = rng.choice(MUTATIONS)
        data = fn(data, rng, keep_head=16) if fn is flip_bytes else fn(data, rng)
        names.append(fn.__name__)
    return data, "+".join(names)


# ---- header patches, one per format --------------------------------------------------


def png_size(data: bytes, width: int, height: int, fix_crc: bool = True) -> bytes:
    """PNG IHDR width/height (bytes 16-24), CRC recomputed so the decoder believes it."""
    out = bytearray(data)
    out[16:24] = struct.pack(">II", width, height)
    if fix_crc:
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    return bytes(out)


def jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """JPEG SOFn frame header height/width (after marker, length and precision)."""
    out = bytearray(data)
    i = 2
    while i + 9 < len(out):
        if out[i] != 0xFF:
            break
        marker = out[i + 1]
        length = struct.unpack(">H", out[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            out[i + 5:i + 9] = struct.pack(">HH", height, width)
            break
        i += 2 + length
    return bytes(out)


def bmp_size(data: bytes, width: int, height: int) -> bytes:
    """BITMAPINFOHEADER biWidth/biHeight (signed: negative height = top-down)."""
    out = bytearray(data)
    out[18:26] = struct.pack("<ii", width, height)
    return bytes(out)


def _tiff_entries(data: bytes) -> tuple[str, list[int]]:
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    return order, [ifd + 2 + 12 * k for k in range(count)]


def tiff_patch(data: bytes, tag: int, type_: int | None = None,
               value: int | None = None) -> bytes:
    """Rewrite one IFD entry of the first directory: its field type and/or its value."""
    out = bytearray(data)
    order, entries = _tiff_entries(data)
    for at in entries:
        if struct.unpack(order + "H", out[at:at + 2])[0] == tag:
            if type_ is not None:
                out[at + 2:at + 4] = struct.pack(order + "H", type_)
            if value is not None:
                out[at + 4:at + 8] = struct.pack(order + "I", 1)
                out[at + 8:at + 12] = struct.pack(order + "I", value)
    return bytes(out)


TIFF_WIDTH, TIFF_HEIGHT, TIFF_STRIP_OFFSETS, TIFF_BITS = 256, 257, 273, 258
TIFF_DOUBLE = 12


def jp2_siz(data: bytes, **fields: int) -> bytes:
    """JPEG 2000 SIZ marker segment (ISO 15444-1 A.5.1) fields rewritten: xsiz, ysiz,
    xtsiz, ytsiz (tile size), csiz (component count), ssiz0 (precision-1 of component 0)."""
    out = bytearray(data)
    at = out.find(b"\xff\x51")
    if at < 0:
        return data
    offsets = {"xsiz": 6, "ysiz": 10, "xosiz": 14, "yosiz": 18, "xtsiz": 22, "ytsiz": 26}
    for name, value in fields.items():
        if name in offsets:
            o = at + offsets[name]
            out[o:o + 4] = struct.pack(">I", value & 0xFFFFFFFF)
        elif name == "csiz":
            out[at + 38:at + 40] = struct.pack(">H", value)
        elif name == "ssiz0":
            out[at + 40] = value
    return bytes(out)


def jp2_ihdr(data: bytes, width: int, height: int, components: int | None = None) -> bytes:
    """JP2 `ihdr` box (height, width, component count) disagreeing with the codestream."""
    out = bytearray(data)
    at = out.find(b"ihdr")
    if at < 0:
        return data
    out[at + 4:at + 12] = struct.pack(">II", height, width)
    if components is not None:
        out[at + 12:at + 14] = struct.pack(">H", components)
    return bytes(out)


def gif_size(data: bytes, width: int, height: int) -> bytes:
    """GIF logical screen width/height (little-endian 16-bit at 6..10)."""
    return data[:6] + struct.pack("<HH", width, height) + data[10:]


def webp_canvas(data: bytes, width: int, height: int) -> bytes:
    """A VP8X chunk claiming a huge canvas, put in front of a simple WebP's bitstream."""
    chunk = b"VP8X" + struct.pack("<I", 10) + bytes(4) + \
        (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + chunk + data[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mp4_sample_size(data: bytes, width: int, height: int, fourcc: bytes = b"avc1") -> bytes:
    """Visual sample entry (ISO 14496-12 12.1.3) width/height of the first `fourcc`."""
    out = bytearray(data)
    at = out.find(fourcc, max(0, out.find(b"stsd")))  # not the ftyp brand of that name
    if at < 0:
        return data
    o = at + 4 + 24
    out[o:o + 4] = struct.pack(">HH", width & 0xFFFF, height & 0xFFFF)
    return bytes(out)


def replace_all(data: bytes, old: bytes, new: bytes) -> bytes:
    """Codec identifiers swapped (e.g. avc1 -> zzzz): a stream no decoder claims."""
    return data.replace(old, new)


def mp4_timescale_zero(data: bytes) -> bytes:
    """mdhd timescale 0: every duration divides by zero."""
    out = bytearray(data)
    at = out.find(b"mdhd")
    if at < 0:
        return data
    version = out[at + 4]
    o = at + 8 + (16 if version == 1 else 8)
    out[o:o + 4] = bytes(4)
    return bytes(out)


def avi_size(data: bytes, width: int, height: int) -> bytes:
    """AVI main header (avih) dwWidth/dwHeight."""
    out = bytearray(data)
    at = out.find(b"avih")
    if at < 0:
        return data
    out[at + 8 + 32:at + 8 + 40] = struct.pack("<II", width, height)
    return bytes(out)


def mpeg_size(data: bytes, width: int, height: int) -> bytes:
    """MPEG-1/2 sequence header horizontal/vertical size (12 bits each)."""
    out = bytearray(data)
    at = out.find(b"\x00\x00\x01\xb3")
    if at < 0:
        return data
    v = ((width & 0xFFF) << 12) | (height & 0xFFF)
    out[at + 4:at + 7] = v.to_bytes(3, "big")
    return bytes(out)


# ---- metadata: EXIF, ICC profiles, XMP -------------------------------------------------
# Where the pixels are fine and only the metadata lies (issue 20: fuzzed EXIF answered
# 5000). The segments are found from each container's layout, mutated, and written back
# with their lengths (and PNG CRCs) recomputed, so the file still reaches the metadata
# parser instead of failing at the container.

JPEG_PREFIXES = {b"Exif\x00\x00": "exif", b"http://ns.adobe.com/xap/1.0/\x00": "xmp",
                 b"ICC_PROFILE\x00": "icc"}
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
# Tags a mutated IFD entry takes: ones Pillow's readers and writer give meaning to
# (orientation, sizes, offsets, the EXIF/GPS/interop sub-IFD pointers, XMP and ICC
# inside EXIF) and a few unknown ones.
EXIF_TAGS = (0x0100, 0x0101, 0x0102, 0x0103, 0x0111, 0x0112, 0x0117, 0x011A, 0x0128,
             0x0131, 0x0132, 0x013B, 0x0201, 0x0202, 0x02BC, 0x8769, 0x8773, 0x8825,
             0x9003, 0x920A, 0x927C, 0xA005, 0xC4A5, 0x0000, 0xFFFF, 0x1234)


@dataclass(frozen=True)
class Segment:
    """One metadata payload in a file: `kind` exif | icc | xmp, its bytes at
    data[start:end], in a `container` segment that keeps `prefix` in front of it."""

    kind: str
    container: str  # jpeg | png | webp
    start: int  # where the container's segment (marker/chunk header) begins
    end: int  # where it ends (after the CRC / padding)
    prefix: bytes  # what stays in front of the payload inside the segment
    payload: bytes
    tag: bytes = b""  # JPEG marker, PNG or WebP chunk type


def metadata_segments(data: bytes) -> list[Segment]:
    """The EXIF, ICC and XMP payloads of a JPEG, PNG or WebP file (none for others)."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_segments(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_segments(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_segments(data)
    return []


def _jpeg_segments(data: bytes) -> list[Segment]:
    out, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:  # up to SOS
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        body = data[i + 4:i + 2 + length]
        for prefix, kind in JPEG_PREFIXES.items():
            if body.startswith(prefix):
                head = prefix + body[len(prefix):len(prefix) + 2] if kind == "icc" else prefix
                out.append(Segment(kind, "jpeg", i, i + 2 + length, head, body[len(head):],
                                   data[i:i + 2]))
        i += 2 + length
    return out


def _png_segments(data: bytes) -> list[Segment]:
    out, i = [], 8
    while i + 12 <= len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        kind_bytes, body = data[i + 4:i + 8], data[i + 8:i + 8 + length]
        end = i + 12 + length
        if kind_bytes == b"eXIf":
            out.append(Segment("exif", "png", i, end, b"", body, kind_bytes))
        elif kind_bytes == b"iCCP":
            name_end = body.find(b"\x00") + 2  # profile name, NUL, compression method
            out.append(Segment("icc", "png", i, end, body[:name_end], body[name_end:],
                               kind_bytes))
        elif kind_bytes == b"iTXt" and body.startswith(PNG_XMP_KEYWORD + b"\x00"):
            # keyword NUL, compression flag and method, language tag NUL, keyword NUL
            at = len(PNG_XMP_KEYWORD) + 3
            at = body.index(b"\x00", at) + 1
            at = body.index(b"\x00", at) + 1
            out.append(Segment("xmp", "png", i, end, body[:at], body[at:], kind_bytes))
        i = end
    return out


def _webp_segments(data: bytes) -> list[Segment]:
    kinds = {b"EXIF": "exif", b"ICCP": "icc", b"XMP ": "xmp"}
    out, i = [], 12
    while i + 8 <= len(data):
        fourcc = data[i:i + 4]
        size = struct.unpack("<I", data[i + 4:i + 8])[0]
        end = i + 8 + size + (size & 1)
        if fourcc in kinds:
            out.append(Segment(kinds[fourcc], "webp", i, end, b"", data[i + 8:i + 8 + size],
                               fourcc))
        i = end
    return out


def replace_segment(data: bytes, seg: Segment, payload: bytes) -> bytes:
    """`data` with `seg`'s payload replaced and its container's lengths written again."""
    body = seg.prefix + payload
    if seg.container == "jpeg":
        body = body[:65533]  # a JPEG segment's length is 16 bits
        new = seg.tag + struct.pack(">H", len(body) + 2) + body
    elif seg.container == "png":
        new = struct.pack(">I", len(body)) + seg.tag + body + \
            struct.pack(">I", zlib.crc32(seg.tag + body))
    else:
        new = seg.tag + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)
    out = data[:seg.start] + new + data[seg.end:]
    if seg.container == "webp":
        out = out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
    return out


def _tiff_ifd_entries(tiff: bytes) -> tuple[str, list[int]]:
    """Byte order and the offsets of every IFD entry reachable from IFD0 (IFD0, its
    next IFD, and the EXIF/GPS sub-IFDs), bounded: a loop is walked once."""
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return "<", []
    order = "<" if tiff[:2] == b"II" else ">"
    todo, seen, entries = [struct.unpack(order + "I", tiff[4:8])[0]], set(), []
    while todo and len(seen) < 8:
        ifd = todo.pop()
        if ifd in seen or ifd + 2 > len(tiff):
            continue
        seen.add(ifd)
        count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
        for k in range(min(count, 64)):
            at = ifd + 2 + 12 * k
            if at + 12 > len(tiff):
                break
            entries.append(at)
            tag = struct.unpack(order + "H", tiff[at:at + 2])[0]
            if tag in (0x8769, 0x8825):
                todo.append(struct.unpack(order + "I", tiff[at + 8:at + 12])[0])
        nxt = ifd + 2 + 12 * count
        if nxt + 4 <= len(tiff):
            todo.append(struct.unpack(order + "I", tiff[nxt:nxt + 4])[0])
    return order, entries


def exif_entry(tiff: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One IFD entry's tag, type, count or value rewritten: a string where a number
    belongs, a count past the data, an offset out of the block or back into its own IFD."""
    order, entries = _tiff_ifd_entries(tiff)
    if not entries:
        return flip_bytes(tiff, rng), "EXIF bytes"
    out = bytearray(tiff)
    at = rng.choice(entries)
    field_ = rng.choice(("tag", "type", "count", "value"))
    if field_ == "tag":
        out[at:at + 2] = struct.pack(order + "H", rng.choice(EXIF_TAGS))
    elif field_ == "type":
        out[at + 2:at + 4] = struct.pack(order + "H", rng.randrange(0, 20))
    elif field_ == "count":
        out[at + 4:at + 8] = struct.pack(order + "I", rng.choice(
            (0, 1, 2, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32))))
    else:
        out[at + 8:at + 12] = struct.pack(order + "I", rng.choice(
            (0, 8, len(tiff), len(tiff) - 1, 0xFFFFFFFF, rng.randrange(1 << 32),
             rng.randrange(max(1, len(tiff))))))
    return bytes(out), f"EXIF entry {field_}"


def _hostile_metadata(kind: str, rng: random.Random) -> tuple[bytes, str]:
    """A whole payload replaced by one built to break its parser."""
    if kind == "xmp":
        name, xml = rng.choice((
            ("entity expansion", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
             + b"".join(b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;">' % (c, c - 1, c - 1, c - 1,
                                                                     c - 1, c - 1, c - 1)
                        for c in range(ord("b"), ord("j")))
             + b']><x:xmpmeta xmlns:x="adobe:ns:meta/">&i;</x:xmpmeta>'),
            ("orientation 10^20", b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description'
             b' tiff:Orientation="100000000000000000000"/></rdf:RDF></x:xmpmeta>'),
            ("orientation -1", b'<x:xmpmeta><rdf:Description tiff:Orientation="-1"/></x:xmpmeta>'),
            ("orientation text", b"<x:xmpmeta><tiff:Orientation>six</tiff:Orientation>"),
            ("unterminated", b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Descr'),
            ("deep nesting", b"<a>" * 20000 + b"</a>" * 20000),
            ("not UTF-8", bytes(rng.randrange(128, 256) for _ in range(300))),
        ))
        return xml, f"XMP {name}"
    if kind == "icc":
        name, profile = rng.choice((
            ("random", rng.randbytes(rng.randint(0, 600))),
            ("empty", b""),
            ("size 2^32-1", struct.pack(">I", 0xFFFFFFFF) + b"lcms\x02\x10\x00\x00mntrRGB XYZ "
             + bytes(116) + struct.pack(">I", 0xFFFFFF)),
            ("tag table past the end", bytes(128) + struct.pack(">I", 0x7FFFFFFF)),
        ))
        return profile, f"ICC {name}"
    order = rng.choice((b"II*\x00", b"MM\x00*"))
    pack = "<" if order == b"II*\x00" else ">"
    name, tiff = rng.choice((
        ("IFD pointing at itself", order + struct.pack(pack + "IH", 8, 1)
         + struct.pack(pack + "HHII", 0x8769, 4, 1, 8) + struct.pack(pack + "I", 8)),
        ("IFD count 65535", order + struct.pack(pack + "IH", 8, 0xFFFF) + bytes(24)),
        ("IFD offset past the end", order + struct.pack(pack + "I", 0x7FFFFFFF)),
        ("orientation as a string", order + struct.pack(pack + "IH", 8, 1)
         + struct.pack(pack + "HHI", 0x0112, 2, 4) + b"six\x00" + bytes(4)),
        ("random", order + rng.randbytes(rng.randint(0, 200))),
    ))
    return tiff, f"EXIF {name}"


def mutate_metadata(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One metadata segment of a JPEG, PNG or WebP mutated (its entries, its bytes, cut
    short or replaced by a hostile payload); the pixels are untouched."""
    segments = metadata_segments(data)
    if not segments:
        return data, "no metadata"
    seg = rng.choice(segments)
    how = rng.choice(("entry", "entry", "flip", "truncate", "hostile"))
    if how == "entry" and seg.kind == "exif":
        payload, name = exif_entry(seg.payload, rng)
    elif how in ("entry", "flip"):
        payload, name = flip_bytes(seg.payload, rng), f"{seg.kind.upper()} bytes"
    elif how == "truncate":
        payload, name = truncate(seg.payload, rng), f"{seg.kind.upper()} cut short"
    else:
        payload, name = _hostile_metadata(seg.kind, rng)
    return replace_segment(data, seg, payload), f"{name} in {seg.container}"


def with_metadata(img: Image.Image) -> dict[str, bytes]:
    """`img` as JPEG, PNG and WebP carrying what cameras and editors write: EXIF (a
    rotation, strings, rationals, an EXIF sub-IFD and GPS), an sRGB ICC profile and XMP."""
    from PIL import ImageCms, PngImagePlugin
    from PIL.TiffImagePlugin import IFDRational as R

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated, as a phone stores a portrait
    exif[0x010F], exif[0x0110] = "FuzzCam", "Model 1"
    exif[0x011A] = exif[0x011B] = R(72, 1)
    exif[0x0132] = "2024:01:01 12:00:00"
    exif.get_ifd(0x8769).update({0x9003: "2024:01:01 12:00:00", 0x920A: R(35, 10),
                                 0x9286: b"ASCII\x00\x00\x00comment"})
    exif.get_ifd(0x8825).update({1: "N", 2: (R(48, 1), R(51, 1), R(24, 1))})
    raw_exif = exif.tobytes()
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2024, 1, 1, 12, 0, 0)  # its creation time: a fixed corpus
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
           b' tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    png_info = PngImagePlugin.PngInfo()
    png_info.add_itxt(PNG_XMP_KEYWORD.decode(), xmp.decode())
    return {
        "meta.jpg": _image_bytes(img, "JPEG", quality=85, exif=raw_exif,
                                 icc_profile=bytes(icc), xmp=xmp),
        "meta.png": _image_bytes(img, "PNG", exif=raw_exif, icc_profile=bytes(icc),
                                 pnginfo=png_info),
        "meta.webp": _image_bytes(img, "WEBP", quality=80, exif=raw_exif,
                                  icc_profile=bytes(icc), xmp=xmp),
    }


# ---- the corpus ---------------------------------------------------------------------


@dataclass
class MediaCorpus:
    """Named base files, grouped by what they are. Keys name the file for case text."""

    faces: dict[str, bytes] = field(default_factory=dict)        # small real face photos
    real_images: dict[str, bytes] = field(default_factory=dict)  # shared/data as is
    formats: dict[str, bytes] = field(default_factory=dict)      # generated, one per format
    small_videos: dict[str, bytes] = field(default_factory=dict)  # generated, 1 s, 64 px
    real_videos: dict[str, bytes] = field(default_factory=dict)  # shared/data as is
    metadata: dict[str, bytes] = field(default_factory=dict)  # a face with EXIF, ICC, XMP

    def any_image(self, rng: random.Random) -> tuple[str, bytes]:
        pool = rng.choice((self.faces, self.faces, self.formats, self.real_images))
        name = rng.choice(sorted(pool))
        return name, pool[name]


def _image_bytes(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _clip(codec: str, container: str, size: int = 64, frames: int = 15,
          pix_fmt: str = "yuv420p", seed: int = 0, audio: str | None = None,
          video: bool = True, fps: int = 15) -> bytes:
    """A small clip of moving noise (and optionally a silent audio track)."""
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    with av.open(out, "w", format=container) as box:
        vs = box.add_stream(codec, rate=fps) if video else None
        if vs is not None:
            vs.width = vs.height = size
            vs.pix_fmt = pix_fmt
        aus = box.add_stream(audio, rate=48000) if audio else None
        for i in range(frames if video else 0):
            img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                box.mux(packet)
        if aus is not None:
            layout = "stereo" if audio == "libopus" else "mono"
            samples = 960 if audio == "libopus" else 1024
            fmt = aus.codec_context.format.name if aus.codec_context.format else "fltp"
            for i in range(10):
                frame = av.AudioFrame(format=fmt, layout=layout, samples=samples)
                for plane in frame.planes:
                    plane.update(bytes(plane.buffer_size))
                frame.sample_rate = 48000
                frame.pts = i * samples
                frame.time_base = Fraction(1, 48000)
                for packet in aus.encode(frame):
                    box.mux(packet)
            for packet in aus.encode():
                box.mux(packet)
        if vs is not None:
            for packet in vs.encode():
                box.mux(packet)
    return out.getvalue()


def _generated_formats(face: Image.Image) -> dict[str, bytes]:
    noise = Image.frombytes("RGB", (16, 16), random.Random(7).randbytes(16 * 16 * 3))
    small = face.copy()
    small.thumbnail((160, 160))
    out: dict[str, bytes] = {}
    for tag, img in (("noise16", noise), ("face160", small)):
        out[f"{tag}.jpg"] = _image_bytes(img, "JPEG", quality=85)
        out[f"{tag}.progressive.jpg"] = _image_bytes(img, "JPEG", progressive=True)
        out[f"{tag}.png"] = _image_bytes(img, "PNG")
        out[f"{tag}.rgba.png"] = _image_bytes(img.convert("RGBA"), "PNG")
        out[f"{tag}.16bit.png"] = _image_bytes(img.convert("I;16"), "PNG")
        out[f"{tag}.bmp"] = _image_bytes(img, "BMP")
        out[f"{tag}.tif"] = _image_bytes(img, "TIFF")
        out[f"{tag}.lzw.tif"] = _image_bytes(img, "TIFF", compression="tiff_lzw")
        out[f"{tag}.webp"] = _image_bytes(img, "WEBP", quality=80)
        out[f"{tag}.lossless.webp"] = _image_bytes(img, "WEBP", lossless=True)
        out[f"{tag}.jp2"] = _image_bytes(img, "JPEG2000")
        out[f"{tag}.j2k"] = _image_bytes(img, "JPEG2000", no_jp2=True)
        out[f"{tag}.gif"] = _image_bytes(img, "GIF")
        out[f"{tag}.ico"] = _image_bytes(img, "ICO")
        out[f"{tag}.ppm"] = _image_bytes(img, "PPM")
        out[f"{tag}.tga"] = _image_bytes(img, "TGA")
        out[f"{tag}.pcx"] = _image_bytes(img, "PCX")
        out[f"{tag}.pdf"] = _image_bytes(img, "PDF")
    frames = [noise.rotate(a) for a in (0, 90, 180)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out["noise16.animated.gif"] = buf.getvalue()
    out["svg"] = (b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000">'
                  b'<rect width="100%" height="100%"/></svg>')
    out["heic-box"] = struct.pack(">I", 24) + b"ftypheic" + bytes(4) + b"mif1heic"
    out["text"] = b"this is not an image\n"
    out["empty"] = b""
    out["one-byte"] = b"\xff"
    out["jpeg-magic-only"] = b"\xff\xd8\xff"
    out["png-magic-only"] = b"\x89PNG\r\n\x1a\n"
    return out


def _small_videos() -> dict[str, bytes]:
    return {
        "noise.mp4": _clip("libx264", "mp4"),
        "noise.webm": _clip("libvpx", "webm"),
        "noise.mkv": _clip("mjpeg", "matroska", pix_fmt="yuvj420p"),
        "noise.avi": _clip("mpeg4", "avi"),
        "noise.mpg": _clip("mpeg1video", "mpeg", fps=25),
        "noise.mov": _clip("libx264", "mov"),
        "noise+aac.mp4": _clip("libx264", "mp4", audio="aac"),
        "aac-only.mp4": _clip("libx264", "mp4", audio="aac", video=False),
        "opus-only.webm": _clip("libvpx", "webm", audio="libopus", video=False),
        "noise.ffv1.mkv": _clip("ffv1", "matroska", pix_fmt="yuv420p"),
        "noise.16px.mp4": _clip("libx264", "mp4", size=16, frames=3),
        "noise.1frame.mp4": _clip("libx264", "mp4", frames=1),
    }


@lru_cache(maxsize=2)
def load_corpus(data_dir: Path) -> MediaCorpus:
    """Read shared/data once and generate the synthetic files (deterministic)."""
    corpus = MediaCorpus()
    labels = json.loads((data_dir / "labels.json").read_text())
    face_files = {p for pair in labels["pairs"] for p in (pair["a"], pair["b"])}
    face_files = sorted(p for p in face_files if (data_dir / p).is_file())
    by_size = sorted(face_files, key=lambda p: (data_dir / p).stat().st_size)
    for rel in by_size[:10]:
        with Image.open(data_dir / rel) as img:
            img = img.convert("RGB")
            img.thumbnail((256, 256))
            stem = Path(rel).stem
            corpus.faces[f"{stem}.256.jpg"] = _image_bytes(img, "JPEG", quality=90)
            corpus.faces[f"{stem}.256.png"] = _image_bytes(img, "PNG")
    # real files as published: the two smallest JPEGs and PNGs plus one large photo
    pngs = [p for p in by_size if p.endswith(".png")]
    jpgs = [p for p in by_size if p.endswith(".jpg")]
    for rel in jpgs[:2] + pngs[:2] + jpgs[-1:]:
        corpus.real_images[Path(rel).name] = (data_dir / rel).read_bytes()
    with Image.open(data_dir / by_size[0]) as face:
        corpus.formats = _generated_formats(face.convert("RGB"))
        # stored rotated, as EXIF orientation 6 says: upright once the service applies it
        corpus.metadata = with_metadata(face.convert("RGB").transpose(
            Image.Transpose.ROTATE_90))
    corpus.small_videos = _small_videos()
    videos = sorted((data_dir / "blink" / "zju").glob("*.mp4"),
                    key=lambda p: p.stat().st_size)[:3]
    videos += sorted((data_dir / "mouth" / "grid").glob("*.mpg"))[:1]
    videos += sorted((data_dir / "splices").glob("*.mp4"))[:1]
    videos += sorted((data_dir / "blink" / "zju_original").glob("*.avi"))[:1]
    for path in videos:
        corpus.real_videos[f"{path.parent.name}/{path.name}"] = path.read_bytes()
    return corpus


def warm_up_images(corpus: MediaCorpus) -> list[bytes]:
    """A small face photo and a 4000x3000 photo with no face (the face search then runs
    every pass, up to its largest size): the requests that set the baseline memory."""
    ramp = np.linspace(40, 220, 4000, dtype=np.uint8)
    blank = Image.fromarray(np.repeat(np.tile(ramp, (3000, 1))[:, :, None], 3, axis=2))
    return [corpus.faces[min(corpus.faces)], _image_bytes(blank, "JPEG", quality=80)]
