"""Base64 variants, media sniffing and the image decoder on real and hostile bytes."""

from __future__ import annotations

import base64
import random

import cv2
import numpy as np
import pytest
from conftest import DATA, data_bytes, make_config

from service.api.request import decode_base64
from service.errors import ApiError, BadMedia, MalformedField
from service.media.pool import DecoderPool
from service.media.uploads import MediaKind, decode_image, sniff

PHOTO = "faces/face_recognition/obama__obama-240p.jpg"
CFG = make_config().media


@pytest.fixture(scope="module")
def pool():
    decoders = DecoderPool(1)
    yield decoders
    decoders.close()


@pytest.mark.parametrize("wrap", [
    lambda s: s,
    lambda s: "data:image/jpeg;base64," + s,
    lambda s: "DATA:image/png;charset=utf-8;base64," + s,
    lambda s: "\n".join(s[i:i + 76] for i in range(0, len(s), 76)),
    lambda s: "  " + s.replace("A", "A\r\n", 3) + "\t ",
    lambda s: s.rstrip("="),
    lambda s: s.replace("+", "-").replace("/", "_"),
])
def test_base64_variants_decode_to_the_same_bytes(wrap):
    raw = data_bytes(PHOTO)
    assert decode_base64("img", wrap(base64.b64encode(raw).decode())) == raw


@pytest.mark.parametrize("text", ["@@@@", "abc$", "data:image/jpeg;base64,", "   ", "é"])
def test_bad_base64_names_the_field(text):
    with pytest.raises(MalformedField, match="img1"):
        decode_base64("img1", text)


def test_sniffing_tells_images_from_videos_by_bytes():
    assert sniff(data_bytes(PHOTO)) is MediaKind.IMAGE
    assert sniff(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()) is MediaKind.IMAGE
    assert sniff(data_bytes("blink/zju/000001M_FBN.mp4")) is MediaKind.VIDEO
    assert sniff(data_bytes("blink/zju_original/000003M_FNN.avi")) is MediaKind.VIDEO
    assert sniff(data_bytes("mouth/grid/bbaf2n.mpg")) is MediaKind.VIDEO
    assert sniff(b"just some text") is MediaKind.UNKNOWN


def test_video_bytes_are_not_an_image(pool):
    with pytest.raises(BadMedia):
        decode_image(pool, data_bytes("blink/zju/000001M_FBN.mp4"), CFG)


def test_exif_orientation_is_applied(pool):
    img = cv2.imread(str(DATA / PHOTO))
    ok, jpeg = cv2.imencode(".jpg", img)
    raw = jpeg.tobytes()
    # APP1 Exif segment with Orientation = 6 (rotate 90 degrees clockwise)
    tiff = b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"
    app1 = b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff
    rotated = decode_image(pool, raw[:2] + app1 + raw[2:], CFG).image
    assert rotated.shape[:2] == (img.shape[1], img.shape[0])


def test_random_and_truncated_bytes_never_crash_the_decoder(pool):
    rng = random.Random(1234)
    real = data_bytes(PHOTO)
    samples = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 2048))) for _ in range(200)]
    samples += [real[:n] for n in (0, 1, 3, 10, 100, 1000, len(real) // 2)]
    samples += [b"\xff\xd8\xff" + bytes(rng.getrandbits(8) for _ in range(500)) for _ in range(50)]
    for sample in samples:
        try:
            img = decode_image(pool, sample, CFG).image
        except ApiError:
            continue
        assert img.ndim == 3 and img.shape[2] == 3
