"""Every error status of the contract, provoked with real bad input over HTTP."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import urlsplit

import cv2
import pytest
from conftest import (
    DATA,
    KEY,
    SECRET,
    data_bytes,
    make_config,
    png_claiming,
    start_server,
    status_of,
)

from testing.client import signed_fields

FACE = "faces/face_recognition/obama__obama.jpg"


async def post_form(http, base_url, fields: dict, path: str = "/api/verify"):
    async with http.post(f"{base_url}{path}", data=fields) as resp:
        return resp.status, await resp.json()


def form(type_id: str = "21", **extra: str) -> dict[str, str]:
    b64 = base64.b64encode(data_bytes(FACE)).decode()
    return {**signed_fields(KEY, SECRET), "typeId": type_id, "img1": b64, "img2": b64, **extra}


@pytest.mark.parametrize("missing", ["key", "timestamp", "token", "typeId", "img1", "img2"])
async def test_missing_field_answers_4001_naming_it(http, base_url, missing):
    fields = form()
    del fields[missing]
    status, body = await post_form(http, base_url, fields)
    assert (status, status_of(body)) == (400, "4001")
    assert missing in body["messageString"]["value"]
    assert body["infoList"] == []


async def test_bad_base64_answers_4001(http, base_url):
    status, body = await post_form(http, base_url, form(img2="this is *not* base64!!"))
    assert (status, status_of(body)) == (400, "4001")
    assert "img2" in body["messageString"]["value"]


async def test_text_instead_of_an_image_answers_4002(client):
    status, body = await client.verify(21, img1=b"hello, I am plain text", img2=data_bytes(FACE))
    assert (status, status_of(body)) == (400, "4002")


async def test_truncated_image_answers_4002(client):
    png = cv2.imencode(".png", cv2.imread(str(DATA / FACE)))[1].tobytes()
    status, body = await client.verify(21, img1=png[:200], img2=data_bytes(FACE))
    assert (status, status_of(body)) == (400, "4002")


async def test_a_20_mb_body_answers_4013(http, base_url):
    fields = form(img1=base64.b64encode(b"\xff" * (15 * 1024 * 1024)).decode())
    status, body = await post_form(http, base_url, fields)
    assert (status, status_of(body)) == (413, "4013")


async def test_a_chunked_body_over_the_limit_answers_4013(http, base_url):
    fields = "&".join(f"{k}={v}" for k, v in form().items() if k not in ("img1", "img2"))

    async def body():  # no Content-Length: the server must stop reading at the limit
        yield (fields + "&img1=").encode()
        for _ in range(12):
            yield b"A" * (1024 * 1024)

    async with http.post(f"{base_url}/api/verify", data=body(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        answer = await resp.json()
    assert (resp.status, status_of(answer)) == (413, "4013")


async def test_image_over_100_megapixels_answers_4013(client):
    status, body = await client.verify(21, img1=png_claiming(12000, 10000),
                                       img2=data_bytes(FACE))
    assert (status, status_of(body)) == (413, "4013")


async def test_image_without_a_face_answers_4003(client):
    # the machine-readable zone and text of a specimen passport: real, and faceless
    doc = cv2.imread(str(DATA / "id_documents/100_pass-bdr.jpg"))
    faceless = cv2.imencode(".jpg", doc[900:, :1000])[1].tobytes()
    status, body = await client.verify(21, img1=data_bytes(FACE), img2=faceless)
    assert (status, status_of(body)) == (200, "4003")
    assert "img2" in body["messageString"]["value"]


async def test_bad_token_answers_4010(http, base_url):
    status, body = await post_form(http, base_url, form(token="0" * 64))
    assert (status, status_of(body)) == (401, "4010")


async def test_unknown_key_answers_4010(http, base_url):
    fields = {**form(), **signed_fields("nobody", SECRET)}
    status, body = await post_form(http, base_url, fields)
    assert (status, status_of(body)) == (401, "4010")


@pytest.mark.parametrize("skew", [-305, +305, -86400])
async def test_timestamp_outside_the_window_answers_4011(http, base_url, skew):
    fields = {**form(), **signed_fields(KEY, SECRET, f"{time.time() + skew:.3f}")}
    status, body = await post_form(http, base_url, fields)
    assert (status, status_of(body)) == (401, "4011")


async def test_replayed_request_answers_4011(http, base_url):
    fields = form()
    first_status, first = await post_form(http, base_url, fields)
    assert status_of(first) == "2000"
    status, body = await post_form(http, base_url, fields)
    assert (status, status_of(body)) == (401, "4011")
    assert "replay" in body["messageString"]["value"]


async def test_malformed_timestamp_answers_4001(http, base_url):
    fields = {**form(), **signed_fields(KEY, SECRET, "yesterday")}
    status, body = await post_form(http, base_url, fields)
    assert (status, status_of(body)) == (400, "4001")


async def test_unknown_type_id_answers_4006(http, base_url):
    status, body = await post_form(http, base_url, form(type_id="9999"))
    assert (status, status_of(body)) == (400, "4006")


async def test_non_numeric_type_id_answers_4001(http, base_url):
    status, body = await post_form(http, base_url, form(type_id="faces"))
    assert (status, status_of(body)) == (400, "4001")


async def test_json_body_answers_4001(http, base_url):
    async with http.post(f"{base_url}/api/verify", json=form()) as resp:
        body = await resp.json()
    assert (resp.status, status_of(body)) == (400, "4001")


async def test_repeated_bad_tokens_are_rate_limited_with_4290(http):
    server = await start_server(make_config(auth__max_failed_auth=3))
    try:
        url = str(server.make_url("/api/verify"))
        seen = []
        for _ in range(5):
            async with http.post(url, data=form(token="f" * 64)) as resp:
                seen.append(status_of(await resp.json()))
        assert seen == ["4010", "4010", "4010", "4290", "4290"]
        # even a correct request from that address waits out the window
        async with http.post(url, data=form()) as resp:
            assert status_of(await resp.json()) == "4290"
    finally:
        await server.close()


async def test_health_and_readiness(http, base_url):
    async with http.get(f"{base_url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{base_url}/readyz") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "ready"


async def test_a_client_that_hangs_up_mid_upload_leaves_the_service_serving(http, base_url):
    """The upload stops halfway and the socket closes: nothing to answer, but the
    service must neither crash nor keep waiting, and the next request is served."""
    host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
    for _ in range(3):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /api/verify HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 1000000\r\n\r\nkey=test-key&img1=" + b"A" * 5000)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    status, body = await post_form(http, base_url, form())
    assert (status, status_of(body)) == (200, "2000")
