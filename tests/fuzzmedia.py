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


# ---- the corpus ---------------------------------------------------------------------


@dataclass
class MediaCorpus:
    """Named base files, grouped by what they are. Keys name the file for case text."""

    faces: dict[str, bytes] = field(default_factory=dict)        # small real face photos
    real_images: dict[str, bytes] = field(default_factory=dict)  # shared/data as is
    formats: dict[str, bytes] = field(default_factory=dict)      # generated, one per format
    small_videos: dict[str, bytes] = field(default_factory=dict)  # generated, 1 s, 64 px
    real_videos: dict[str, bytes] = field(default_factory=dict)  # shared/data as is

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
