"""typeId 3035 with a video: the vendor answer for real clips, through the HTTP API."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DATA, data_bytes, status_of

from testing.videos import encode, still

ORDER = ["Decision value", "Live or not", "Whether there is a replacement",
         "Whether there is blinking", "Whether there is a mouth"]


def answer(body: dict) -> dict[str, str]:
    assert status_of(body) == "2000", body["messageString"]
    items = body["infoList"][0]["veritem"]
    assert [i["desc"] for i in items] == ORDER
    assert all(i["name"] is None for i in items)
    return {i["desc"]: i["content"] for i in items}


async def test_blinking_clip_is_live_with_the_vendor_fields_in_order(client):
    status, body = await client.verify(3035, img=data_bytes("blink/zju/000001M_FBN.mp4"))
    assert status == 200
    got = answer(body)
    assert got["Whether there is blinking"] == "yes"
    assert got["Whether there is a replacement"] == "no"
    assert got["Live or not"] == "Living body"
    value = float(got["Decision value"])
    assert 50.0 <= value <= 100.0 and got["Decision value"] == f"{value:.1f}"
    detail = body["detail"]
    assert [e["kind"] for e in detail["events"]].count("blink") >= 2
    assert detail["best_frame"]["quality"]["sharpness"] > 0


async def test_talking_clip_as_multipart_file_moves_its_mouth(client):
    status, body = await client.verify(3035, multipart=True,
                                       file=data_bytes("mouth/grid/bbaf2n.mpg"))
    assert status == 200
    got = answer(body)
    assert got["Whether there is a mouth"] == "yes"
    assert got["Whether there is a replacement"] == "no"


async def test_indeo_avi_is_analysed_like_its_mp4_twin(client):
    _, avi = await client.verify(3035, img=data_bytes("blink/zju_original/000003M_FNN.avi"))
    _, mp4 = await client.verify(3035, img=data_bytes("blink/zju/000003M_FNN.mp4"))
    assert answer(avi)["Whether there is blinking"] == "yes"
    blinks = [[e for e in b["detail"]["events"] if e["kind"] == "blink"] for b in (avi, mp4)]
    assert len(blinks[0]) == len(blinks[1]) == 3


@pytest.mark.parametrize("entry", ["000003M_FNN+000008M_FBN", "000007M_FNN+000007M_FBN"])
async def test_spliced_clips_report_replacement_as_labelled(client, labels, entry):
    clip = next(c for c in labels["spliced_clips"] if entry in c["path"])
    _, body = await client.verify(3035, img=data_bytes(clip["path"]))
    got = answer(body)
    assert got["Whether there is a replacement"] == ("yes" if clip["replaced"] else "no")
    if clip["replaced"]:
        assert got["Live or not"] == "Non-living body"


async def test_still_photo_sent_as_video_is_not_live(client):
    image = cv2.imread(str(DATA / "spoof/live_frames/000001M.jpg"))
    _, body = await client.verify(3035, img=encode(still(image, 3.0)))
    got = answer(body)
    assert got["Live or not"] == "Non-living body"
    assert got["Whether there is blinking"] == "no"
    assert got["Whether there is a mouth"] == "no"
    assert "no blink or mouth movement" in body["detail"]["reasons"]


async def test_video_without_a_face_answers_4003(client):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), np.uint8), (0, 0), 3)
              for _ in range(20)]
    _, body = await client.verify(3035, img=encode(frames))
    assert status_of(body) == "4003"


async def test_two_faces_side_by_side_for_the_whole_clip_answer_4004(client):
    halves = []
    for name in ("000001M", "000013F"):  # 320x240 webcam frames: keep the middle half
        image = cv2.imread(str(DATA / f"spoof/live_frames/{name}.jpg"))
        halves.append(cv2.resize(image[:, 80:240], (320, 480)))
    _, body = await client.verify(3035, img=encode(still(np.hstack(halves), 2.0)))
    assert status_of(body) == "4004"


async def test_truncated_video_answers_without_hanging(client):
    data = data_bytes("blink/zju/000001M_FBN.mp4")
    _, body = await client.verify(3035, img=data[: len(data) // 2])
    assert status_of(body) in {"2000", "4002", "4003"}


async def test_corrupt_video_answers_4002(client):
    fake = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40
    status, body = await client.verify(3035, img=fake)
    assert (status, status_of(body)) == (400, "4002")


async def test_video_longer_than_the_limit_answers_4013(client):
    frames = still(np.full((64, 64, 3), 128, np.uint8), 31.0, fps=2)
    status, body = await client.verify(3035, img=encode(frames, fps=2))
    assert (status, status_of(body)) == (413, "4013")
