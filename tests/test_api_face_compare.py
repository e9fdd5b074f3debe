"""typeId 21 face comparison through the real HTTP server, on the labelled data."""

from __future__ import annotations

import asyncio
import base64
import random

import aiohttp
import pytest_asyncio
from conftest import DATA, KEY, SECRET, data_bytes, status_of, veritems

from service.api.verify import VERIFY_API
from service.errors import ApiError
from service.judging.compare import FaceForComparison, prepare_face
from service.judging.decision import Comparison, compare
from service.vision.detection import iou
from service.vision.embedding import cosine
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


@pytest_asyncio.fixture(scope="module")
async def verdicts(server, labels) -> dict[tuple[str, str], Comparison | ApiError]:
    """Every labelled pair judged in-process by the handler's own steps
    (service.api.verify.face_comparison): each unique image prepared once by
    prepare_face with the app's settings on its model runtime, each pair's cosine
    turned into a verdict by decision.compare. A refused image stands for the error its
    pairs would be answered with. The 242 pairs reuse 56 images: each is embedded once,
    not once per pair and side. test_sampled_pairs_answer_over_http_as_in_process
    proves the endpoint answers the same."""
    api = server.app[VERIFY_API]
    cfg = api.config
    gate = asyncio.Semaphore(2)  # as many as model threads: never refused as busy

    async def prepare(path: str) -> FaceForComparison | ApiError:
        async with gate:
            try:
                return await api.runtime.run(prepare_face, api.runtime, data_bytes(path),
                                             cfg.media, cfg.faces, path)
            except ApiError as exc:
                return exc

    paths = sorted({p for pair in labels["pairs"] for p in (pair["a"], pair["b"])})
    prepared = dict(zip(paths, await asyncio.gather(*map(prepare, paths)), strict=True))
    out: dict[tuple[str, str], Comparison | ApiError] = {}
    for pair in labels["pairs"]:
        a, b = prepared[pair["a"]], prepared[pair["b"]]
        if isinstance(a, ApiError) or isinstance(b, ApiError):
            out[pair["a"], pair["b"]] = a if isinstance(a, ApiError) else b
        else:
            out[pair["a"], pair["b"]] = compare(cosine(a.embedding, b.embedding), cfg.compare)
    return out


def sample_pairs(pairs: list[dict], per_label: int = 10) -> list[dict]:
    """A fixed sample of the labelled pairs: `per_label` same-person and as many
    different-person pairs."""
    rng = random.Random(21)
    return [p for same in (True, False)
            for p in rng.sample([p for p in pairs if p["same"] is same], per_label)]


async def test_every_labelled_pair_is_answered_correctly(labels, verdicts):
    wrong = []
    for pair in labels["pairs"]:
        verdict = verdicts[pair["a"], pair["b"]]
        if isinstance(verdict, ApiError):
            wrong.append((pair["a"], pair["b"], verdict.status))
        elif verdict.same != pair["same"] or (verdict.score >= 50) != verdict.same:
            wrong.append((pair["a"], pair["b"], verdict.same, verdict.score,
                          round(verdict.similarity, 4)))
    assert len(labels["pairs"]) == 242
    assert wrong == []


async def test_sampled_pairs_answer_over_http_as_in_process(client, labels, verdicts):
    """The endpoint gives, for a sample of both labels, exactly the in-process verdict
    the test above checks over every pair: decision, value and similarity."""
    sem = asyncio.Semaphore(2)
    sample = sample_pairs(labels["pairs"])
    assert {p["same"] for p in sample} == {True, False}

    async def answer(pair: dict) -> tuple[int, dict]:
        async with sem:
            return await client.verify(21, img1=data_bytes(pair["a"]),
                                       img2=data_bytes(pair["b"]))

    answers = await asyncio.gather(*map(answer, sample))
    differ = []
    for pair, (status, body) in zip(sample, answers, strict=True):
        verdict = verdicts[pair["a"], pair["b"]]
        if isinstance(verdict, ApiError):
            got, expected = (status, status_of(body)), (verdict.http_status, verdict.status)
        else:
            got = (status, status_of(body), *decision(body), body["detail"]["similarity"])
            expected = (200, "2000", verdict.same, verdict.score,
                        verdict.to_json()["similarity"])
        if got != expected:
            differ.append((pair["a"], pair["b"], got, expected))
    assert differ == []


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
