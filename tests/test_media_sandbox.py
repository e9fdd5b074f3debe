"""Client media is decoded in worker processes: hostile files cost one request, never the
service, and cost what the answer needs rather than what a header claims."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import random
import signal
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Self

import cv2
import numpy as np
import pytest
from conftest import DATA, data_bytes, make_config, status_of
from PIL import Image

from service.errors import BadMedia, TooLarge
from service.media.pool import DecoderPool
from service.media.uploads import decode_image, decode_video
from service.state import STATE
from testing.fuzzmedia import metadata_segments, mutate_metadata, with_metadata
from testing.videos import encode

FACE = "faces/face_recognition/obama__obama2.jpg"
CLIP = "blink/zju/000001M_FBN.mp4"
CFG = make_config().media


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    decoders = DecoderPool(1)
    yield decoders
    decoders.close()


def photo() -> np.ndarray:
    return cv2.imread(str(DATA / FACE))


def jp2_with_zero_tile_size() -> bytes:
    """A 16x16 JP2 written by Pillow with the SIZ tile size set to 0x0 (issue 10: this
    crashed OpenJPEG inside the service)."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(out, "JPEG2000")
    data = bytearray(out.getvalue())
    siz = data.index(b"\xff\x51")
    data[siz + 22:siz + 30] = bytes(8)  # XTsiz, YTsiz (ISO 15444-1 A.5.1)
    return bytes(data)


def j2k_codestream() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(out, "JPEG2000", no_jp2=True)
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.fromarray(photo()[:, :, ::-1]).save(out, "GIF")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR claims `width` x `height` (12 KB of claims, no pixels)."""
    real = cv2.imencode(".png", photo()[:8, :8])[1].tobytes()
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return real[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + real[33:]


def video_without_a_decoder() -> bytes:
    """Matroska that demuxes but names a codec FFmpeg does not know (codec_context None)."""
    frames = [np.full((64, 64, 3), 10 * i, np.uint8) for i in range(10)]
    mkv = encode(frames, codec="mpeg4", container="matroska")
    return mkv.replace(b"V_MPEG4/ISO/ASP", b"V_XXXXX/ISO/ASP")  # same length: sizes stay valid


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Highest RSS of this process (where the test server runs) while the block runs."""

    def __enter__(self) -> Self:
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.base


# --- over HTTP: formats refused before any decoder runs ---


@pytest.mark.parametrize("make", [jp2_with_zero_tile_size, j2k_codestream, gif])
async def test_jpeg_2000_and_gif_answer_4002_and_the_service_keeps_serving(client, make):
    status, body = await client.verify(3035, multipart=True, file=make())
    assert (status, status_of(body)) == (400, "4002")
    assert "JPEG, PNG, WebP, BMP, TIFF" in body["messageString"]["value"]
    status, body = await client.verify(21, img1=data_bytes(FACE), img2=data_bytes(FACE))
    assert (status, status_of(body)) == (200, "2000")


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".bmp", photo()[:8, :8])[1].tobytes())
    data[18:26] = struct.pack("<ii", width, height)  # BITMAPINFOHEADER biWidth, biHeight
    return bytes(data)


@pytest.mark.parametrize("claim", [lambda: png_claiming(10000, 10000),
                                   lambda: bmp_claiming(1, 100_000_000)])
async def test_a_header_claiming_100_megapixels_answers_4013_without_touching_memory(
        client, claim):
    with PeakRss() as rss:
        status, body = await client.verify(21, img1=claim(), img2=data_bytes(FACE))
    assert (status, status_of(body)) == (413, "4013")
    assert rss.growth < 50, f"the service grew by {rss.growth:.0f} MB"


async def test_a_video_stream_without_a_decoder_answers_4002(client):
    status, body = await client.verify(3035, img=video_without_a_decoder())
    assert (status, status_of(body)) == (400, "4002")


async def test_decoder_workers_killed_while_idle_are_replaced_before_the_next_request(
        client, server):
    decoders = server.app[STATE].models.runtime.decoders
    before = decoders.pids()
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    status, body = await client.verify(21, img1=data_bytes(FACE), img2=data_bytes(FACE))
    assert (status, status_of(body)) == (200, "2000")
    assert set(decoders.pids()) != set(before)


# --- the pool itself: real deaths, stalls and bombs in a worker ---


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_worker_dying_mid_video_answers_4002_and_the_next_job_is_served(pool, sig):
    frames = decode_video(pool, data_bytes(CLIP), CFG)
    next(frames)  # the worker is mid-job: more frames are on their way
    victim = pool.local().pid
    os.kill(victim, sig)
    with pytest.raises(BadMedia, match="could not be decoded"):
        list(frames)
    assert pool.local().pid != victim
    assert decode_image(pool, data_bytes(FACE), CFG).image.shape == photo().shape


def test_a_worker_over_the_time_limit_is_killed_and_answers_4002(pool):
    cfg = dataclasses.replace(CFG, decode_timeout_s=1.0)
    frames = decode_video(pool, data_bytes(CLIP), cfg)
    next(frames)
    victim = pool.local().pid
    os.kill(victim, signal.SIGSTOP)  # a decoder stuck in a loop, as far as we can tell
    with pytest.raises(BadMedia, match="in time"):
        list(frames)
    assert pool.local().pid != victim
    assert decode_image(pool, data_bytes(FACE), CFG).image.shape == photo().shape


def test_a_consumer_that_stops_early_leaves_a_working_decoder(pool):
    frames = decode_video(pool, data_bytes(CLIP), CFG)
    next(frames)
    frames.close()
    assert len(list(decode_video(pool, data_bytes(CLIP), CFG))) > 10


def test_a_bomb_past_the_worker_memory_limit_fails_inside_the_worker_with_4013(pool):
    # budget check off (set high), so the decoder really tries: 10000x10000 RGB
    cfg = dataclasses.replace(CFG, decode_memory_budget_mb=4096, decode_worker_memory_mb=300)
    with PeakRss() as rss, pytest.raises(TooLarge, match="memory"):
        decode_image(pool, png_claiming(10000, 10000), cfg)
    assert rss.growth < 50
    assert decode_image(pool, data_bytes(FACE), CFG).image.shape == photo().shape


def test_a_10000x10000_jpeg_is_decoded_reduced_to_the_working_size(pool):
    out = io.BytesIO()
    Image.new("L", (10000, 10000), 128).save(out, "JPEG", quality=20)
    with PeakRss() as rss:
        decoded = decode_image(pool, out.getvalue(), CFG)
    assert decoded.original_size == (10000, 10000)
    assert decoded.image.shape == (CFG.image_work_side, CFG.image_work_side, 3)
    # the service holds the 4000 px working image (46 MB), nothing of the 100 MP one
    assert rss.growth < 100, f"the service grew by {rss.growth:.0f} MB"


# --- the pool itself: what comes out of the decoder ---


def test_exif_rotated_jpeg_comes_out_upright(pool):
    upright = photo()
    stored = np.ascontiguousarray(np.rot90(upright))  # as a phone stores a portrait
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored[:, :, ::-1]).save(out, "JPEG", quality=95, exif=exif)
    decoded = decode_image(pool, out.getvalue(), CFG)
    assert decoded.image.shape == upright.shape
    assert decoded.original_size == (upright.shape[1], upright.shape[0])
    assert np.abs(decoded.image.astype(int) - upright).mean() < 4


def exif_with_a_string_where_a_number_belongs() -> bytes:
    """Orientation 6 and a camera maker whose tag id was rewritten to ImageLength (a
    number in TIFF): Pillow reads it, and its EXIF writer, which ImageOps.exif_transpose
    called, raised struct.error (issue 20: the fuzzed EXIF that answered 5000)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "FuzzCam"
    raw = exif.tobytes()
    order = "<" if raw[6:8] == b"II" else ">"
    make = struct.pack(order + "HH", 0x010F, 2)  # tag Make, type ASCII
    assert raw.count(make) == 1
    return raw.replace(make, struct.pack(order + "HH", 0x0101, 2))


def test_a_jpeg_whose_exif_does_not_parse_back_still_comes_out_upright(pool):
    upright = photo()
    out = io.BytesIO()
    Image.fromarray(np.rot90(upright)[:, :, ::-1]).save(
        out, "JPEG", quality=95, exif=exif_with_a_string_where_a_number_belongs())
    decoded = decode_image(pool, out.getvalue(), CFG)
    assert decoded.image.shape == upright.shape
    assert np.abs(decoded.image.astype(int) - upright).mean() < 4


async def test_malformed_metadata_never_answers_5000(client):
    out = io.BytesIO()
    Image.fromarray(np.rot90(photo())[:, :, ::-1]).save(
        out, "JPEG", quality=95, exif=exif_with_a_string_where_a_number_belongs())
    status, body = await client.verify(21, img1=out.getvalue(), img2=data_bytes(FACE))
    assert (status, status_of(body)) == (200, "2000"), body


def test_mutated_exif_icc_and_xmp_answer_an_image_or_4002(pool):
    """The fuzz run's metadata mutations (testing/fuzzmedia.py: IFD entries rewritten,
    bytes flipped, payloads cut short or replaced by hostile XML, ICC and TIFF) on a
    JPEG, PNG and WebP whose pixels are fine: each decodes (the metadata that does not
    parse is ignored) or is refused as a bad image, never a decoder bug (5000)."""
    face = Image.fromarray(photo()[:, :, ::-1])
    face.thumbnail((200, 200))
    stored = face.transpose(Image.Transpose.ROTATE_90)  # EXIF and XMP say orientation 6
    bases = with_metadata(stored)
    assert all({seg.kind for seg in metadata_segments(data)} == {"exif", "icc", "xmp"}
               for data in bases.values())
    rng = random.Random(20)
    answers: dict[str, int] = {"image": 0, "4002": 0}
    for _ in range(300):
        name = rng.choice(sorted(bases))
        data, how = mutate_metadata(bases[name], rng)
        try:
            image = decode_image(pool, data, CFG).image
        except BadMedia:
            answers["4002"] += 1
            continue
        except Exception as exc:
            raise AssertionError(f"{how} of {name}: {exc!r}") from None
        # upright, or as stored when the orientation itself was mutated away
        assert sorted(image.shape[:2]) == sorted(stored.size[::-1]), how
        answers["image"] += 1
    assert answers["image"] > 200, answers  # the pixels were fine: most decode


def test_16_bit_png_is_scaled_to_8_bits_not_clipped(pool):
    ramp = np.linspace(0, 65535, 256 * 64).astype(np.uint16).reshape(64, 256)
    decoded = decode_image(pool, cv2.imencode(".png", ramp)[1].tobytes(), CFG).image
    expected = (ramp >> 8).astype(np.uint8)
    assert decoded.dtype == np.uint8 and decoded.shape == (64, 256, 3)
    assert np.abs(decoded[:, :, 0].astype(int) - expected).max() <= 1
    assert 120 < decoded.mean() < 135  # a full ramp, not a white sheet


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "F"])
def test_every_pillow_mode_becomes_8_bit_bgr(pool, mode):
    rgb = Image.fromarray(photo()[:, :, ::-1])
    grey = np.asarray(rgb.convert("L"))
    if mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * 257)
    elif mode == "F":  # floating-point samples are 0.0-1.0
        image = Image.fromarray(grey.astype(np.float32) / 255)
    else:
        image = rgb.convert(mode)
    assert image.mode == mode
    out = io.BytesIO()
    image.save(out, "JPEG" if mode == "CMYK" else "TIFF")
    decoded = decode_image(pool, out.getvalue(), CFG).image
    assert decoded.dtype == np.uint8 and decoded.shape == photo().shape
    assert np.abs(cv2.cvtColor(decoded, cv2.COLOR_BGR2GRAY) - grey.astype(int)).mean() < 12
