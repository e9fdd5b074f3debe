"""Real people on real footage (issue 19): ../shared/data/turns and the blink and mouth
clips, through the HTTP API (typeId 3035).

Not here: fsa_webcam.mp4 as a passive stream. After issue 19 it is still called a
replacement in 2 of 3 streams on a loaded machine (VP8-smeared frames at the GIF's
pose jumps read 0.2-0.35 against the anchor; README "Real footage"), so a test of it
would fail; it stays an open defect, measured by bench/real_footage.py --streams.

What real people do on camera - turn to +-45 degrees, pass a hand over the face, put a
cap on - must never read as another person, while a cut between two people still does.
"""

from __future__ import annotations

import cv2
import numpy as np
from conftest import data_bytes, status_of

from testing.videos import decode_all, encode


def answer(body: dict) -> dict[str, str]:
    assert status_of(body) == "2000", body["messageString"]
    return {i["desc"]: i["content"] for i in body["infoList"][0]["veritem"]}


async def test_the_same_upload_gets_the_same_answer_every_time(client):
    """One answer per upload: the identity sampling times come from the clip's bytes.
    intel_female.mp4 answered `replaced` 1-3 times in 10 when they came from the OS."""
    clip = data_bytes("turns/intel_female.mp4")
    answers = []
    for _ in range(4):
        status, body = await client.verify(3035, img=clip)
        assert status == 200
        answers.append((answer(body), body["detail"]["identity"], body["detail"]["events"]))
    assert all(a == answers[0] for a in answers[1:])


def fit(image: np.ndarray, width: int = 320, height: int = 240) -> np.ndarray:
    """Scaled to `height` and cut to `width` around the centre (no distortion)."""
    h, w = image.shape[:2]
    scaled = cv2.resize(image, (round(w * height / h), height), interpolation=cv2.INTER_AREA)
    x0 = (scaled.shape[1] - width) // 2
    return np.ascontiguousarray(scaled[:, x0:x0 + width])


async def test_a_webcam_user_who_turns_puts_a_cap_on_and_hides_his_face_is_not_replaced(
        client):
    """turns/fsa_webcam.mp4: turns to near profile, a cap on, hands over the face, dark
    and blurred moments. It answered "replacement yes" in 5 uploads of 5 before."""
    status, body = await client.verify(3035, img=data_bytes("turns/fsa_webcam.mp4"))
    assert status == 200
    assert answer(body)["Whether there is a replacement"] == "no"
    identity = body["detail"]["identity"]
    assert not identity["replaced"] and identity["samples"] >= 5
    assert identity["deferred_while_turned"] > 0  # turned frames were not compared
    # planarity called this real turning head planar: it is no longer reported
    assert "planarity" not in body["detail"]


async def test_a_different_person_swapped_in_while_the_head_is_turned_is_caught(client):
    """ZJU 000003M for 2 s, then the man of fsa_webcam turned ~35 degrees (not
    comparable), then frontal: the first usable sample of him is compared with the
    anchor, and he is not 000003M."""
    first = [fit(f) for f in decode_all(data_bytes("blink/zju/000003M_FNN.mp4"))[::2][:30]]
    man = [fit(f) for f in decode_all(data_bytes("turns/fsa_webcam.mp4"))]
    status, body = await client.verify(3035, img=encode(first + man[48:56] + man[89:135]))
    assert status == 200
    assert answer(body)["Whether there is a replacement"] == "yes"


def turns(body: dict) -> list[str]:
    return [e["kind"] for e in body["detail"]["events"] if e["kind"].startswith("turn_")]


async def test_a_person_who_starts_turned_gets_no_turn_for_facing_the_camera(client, labels):
    """turns/intel_female.mp4 starts at about -45 degrees (her right) and swings to
    +32 (her left): the rest is not taken blindly from the first frames, so the start
    is a right turn and the swing back to the camera is no left turn; a left turn is
    reported only once she is beyond the camera to her left."""
    yaw = next(c for c in labels["turn_clips"] if c["path"] == "turns/intel_female.mp4")
    assert yaw["yaw_deg"][0] < -40 and max(y for y in yaw["yaw_deg"] if y) > 30
    _, body = await client.verify(3035, img=data_bytes("turns/intel_female.mp4"))
    assert turns(body)[0] == "turn_right"
    left = [e for e in body["detail"]["events"] if e["kind"] == "turn_left"]
    # every left turn falls where the labelled yaw is beyond +20 degrees
    for event in left:
        frame = min(round(event["t"] * yaw["fps"]), yaw["frames"] - 1)
        assert yaw["yaw_deg"][frame] > 20


async def test_the_frontal_control_turns_nowhere(client):
    _, body = await client.verify(3035, img=data_bytes("turns/intel_male.mp4"))
    assert turns(body) == []
    assert answer(body)["Whether there is a replacement"] == "no"
