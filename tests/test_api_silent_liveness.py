"""typeId 3035 with an image: live face or presentation attack, in the vendor format."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest
from conftest import DATA, data_bytes, status_of, veritems


def verdict(body: dict) -> tuple[bool, int]:
    assert status_of(body) == "2000", body["messageString"]
    words, value = veritems(body)
    assert words in ("Living body", "Non-living body")
    assert value.startswith("Decision value:")
    return words == "Living body", int(value.split(":")[1])


async def test_every_labelled_spoof_and_live_image_answers_as_labelled(client, labels):
    sem = asyncio.Semaphore(2)
    wrong = []

    async def one(entry: dict) -> None:
        async with sem:
            _, body = await client.verify(3035, img=data_bytes(entry["path"]))
        live, value = verdict(body)
        if live != (entry["label"] == "live"):
            wrong.append((entry["path"], value))

    await asyncio.gather(*(one(e) for e in labels["spoof_images"]))
    assert wrong == []


async def test_score_sits_on_the_side_of_50_that_the_words_say(client):
    live, value = verdict((await client.verify(3035, img=data_bytes(
        "spoof/silent_face/image_T1.jpg")))[1])
    assert live and 50 <= value <= 100
    live, value = verdict((await client.verify(3035, img=data_bytes(
        "spoof/silent_face/image_F2.jpg")))[1])
    assert not live and 0 <= value < 50


async def test_image_as_multipart_file_and_detail_names_the_face(client):
    _, body = await client.verify(3035, multipart=True,
                                  file=data_bytes("spoof/live_frames/000002M.jpg"))
    assert verdict(body)[0]
    detail = body["detail"]
    assert detail["faces_seen"] == 1 and len(detail["per_model"]) == 2
    assert set(detail["quality"]) >= {"face_px", "sharpness", "brightness", "yaw"}


def reencoded(path: str, transform) -> bytes:
    image = transform(cv2.imread(str(DATA / path)))
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.mark.parametrize("problem, transform", [
    ("image too blurred", lambda im: cv2.GaussianBlur(im, (0, 0), 6)),
    ("face too dark", lambda im: (im * 0.12).astype(np.uint8)),
    ("face too small", lambda im: cv2.resize(im, None, fx=0.25, fy=0.25)),
])
async def test_face_that_cannot_be_judged_answers_4005(client, problem, transform):
    _, body = await client.verify(3035, img=reencoded("spoof/silent_face/image_T1.jpg",
                                                      transform))
    assert status_of(body) == "4005"
    assert problem in body["messageString"]["value"]


async def test_image_without_a_face_answers_4003(client):
    blank = cv2.imencode(".png", np.full((300, 300, 3), 200, np.uint8))[1].tobytes()
    _, body = await client.verify(3035, img=blank)
    assert status_of(body) == "4003"


async def test_two_people_answer_4004(client):
    a = cv2.imread(str(DATA / "spoof/live_frames/000001M.jpg"))
    b = cv2.imread(str(DATA / "spoof/live_frames/000013F.jpg"))
    both = np.hstack([a, cv2.resize(b, (a.shape[1], a.shape[0]))])
    _, body = await client.verify(3035, img=cv2.imencode(".jpg", both)[1].tobytes())
    assert status_of(body) == "4004"


async def test_text_instead_of_an_image_answers_4002(client):
    status, body = await client.verify(3035, img=b"just some words, not a picture")
    assert (status, status_of(body)) == (400, "4002")


async def test_missing_image_answers_4001(client):
    status, body = await client.verify(3035)
    assert (status, status_of(body)) == (400, "4001")
    assert "img" in body["messageString"]["value"]
