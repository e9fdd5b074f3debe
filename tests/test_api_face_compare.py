"""typeId 21 face comparison through the real HTTP server, on the labelled data."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
from conftest import DATA, KEY, SECRET, data_bytes, status_of, veritems

from service.vision.detection import iou
from testing.client import signed_fields

SAME = ("faces/face_recognition/obama__obama.jpg", "faces/face_recognition/obama__obama1.jpg")


def decision(body: dict) -> tuple[bool, int]:
    result, value = veritems(body)
    assert result in ("Decision result:yes", "Decision result:no")
    assert value.startswith("Decision value:")
    return result.endswith("yes"), int(value.split(":")[1])


async def test_answer_has_the_vendor_envelope_exactly(client):
    status, body = await client.verify(21, img1=data_bytes(SAME[0]), img2=data_bytes(SAME[1]))
    assert status == 200
    assert body["messageString"] == {"status": "2000", "value": "success"}
    assert set(body) == {"infoList", "messageString", "detail"}
    items = body["infoList"][0]["veritem"]
    assert [set(i) for i in items] == [{"desc", "name", "content"}] * 2
    assert all(i["name"] is None and i["content"] == "" for i in items)
    same, value = decision(body)
    assert same and 50 <= value <= 100


async def test_every_labelled_pair_is_answered_correctly(client, labels):
    sem = asyncio.Semaphore(2)
    wrong = []

    async def check(pair: dict) -> None:
        async with sem:
            status, body = await client.verify(21, img1=data_bytes(pair["a"]),
                                               img2=data_bytes(pair["b"]))
        if status != 200 or status_of(body) != "2000":
            wrong.append((pair["a"], pair["b"], status_of(body)))
            return
        same, value = decision(body)
        if same != pair["same"] or (value >= 50) != same:
            wrong.append((pair["a"], pair["b"], same, value, body["detail"]["similarity"]))

    await asyncio.gather(*(check(p) for p in labels["pairs"]))
    assert len(labels["pairs"]) == 242
    assert wrong == []


async def test_base64_data_url_and_multipart_give_the_same_answer(client, base_url, http):
    a, b = data_bytes(SAME[0]), data_bytes(SAME[1])
    _, plain = await client.verify(21, img1=a, img2=b)
    _, multipart = await client.verify(21, multipart=True, img1=a, img2=b)
    wrapped = "\n".join(base64.b64encode(a).decode()[i:i + 76]
                        for i in range(0, len(base64.b64encode(a)), 76))
    form = {**signed_fields(KEY, SECRET), "typeId": "21",
            "img1": "data:image/jpeg;base64," + wrapped,
            "img2": base64.b64encode(b).decode()}
    async with http.post(f"{base_url}/api/verify", data=form) as resp:
        data_url = await resp.json()
    # the `file` part stands for img1
    mixed = aiohttp.FormData()
    for name, value in {**signed_fields(KEY, SECRET), "typeId": "21",
                        "img2": base64.b64encode(b).decode()}.items():
        mixed.add_field(name, value)
    mixed.add_field("file", a, filename="selfie.jpg", content_type="image/jpeg")
    async with http.post(f"{base_url}/", data=mixed) as resp:
        file_part = await resp.json()
    answers = [plain, multipart, data_url, file_part]
    assert [status_of(x) for x in answers] == ["2000"] * 4
    assert len({tuple(veritems(x)) for x in answers}) == 1
    assert decision(plain)[0] is True


async def test_document_photo_uses_the_holders_portrait(client, labels):
    selfie = data_bytes("faces/face_recognition/obama__obama.jpg")
    for doc in labels["id_documents"]:
        status, body = await client.verify(21, img1=data_bytes(doc["path"]), img2=selfie)
        assert status == 200, doc["path"]
        assert status_of(body) == "2000", (doc["path"], body["messageString"])
        used = body["detail"]["img1"]["face_used"]["box"]
        assert iou(tuple(used), tuple(doc["portrait_box"])) >= 0.5, (doc["path"], used)
        assert decision(body)[0] is False  # a specimen holder is not Obama


async def test_two_people_of_similar_size_is_refused_as_several_faces(client, labels):
    entry = labels["multi_face_images"][0]
    status, body = await client.verify(21, img1=data_bytes(entry["path"]),
                                       img2=data_bytes(SAME[0]))
    assert status == 200
    assert status_of(body) == "4004"
    assert body["infoList"] == []


async def test_image_formats_png_bmp_tiff_webp_are_accepted(client):
    import cv2

    img = cv2.imread(str(DATA / SAME[0]))
    reference = data_bytes(SAME[1])
    for ext in (".png", ".bmp", ".tiff", ".webp"):
        ok, encoded = cv2.imencode(ext, img)
        assert ok, ext
        status, body = await client.verify(21, img1=encoded.tobytes(), img2=reference)
        assert status_of(body) == "2000", (ext, body["messageString"])
        assert decision(body)[0] is True, ext
