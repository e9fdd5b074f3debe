"""Hostile bodies, offers and credentials over HTTP: each answers its envelope, never 5000.

Every case of issue 10 that crashed a handler (a traceback and 5000) or answered outside
the envelope is sent here as raw bytes to a real server on loopback; each test checks
the HTTP status, the envelope status and that the server then still serves a valid
request. Bad WHIP offers are a real aiortc client's offer with one line mutated.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from conftest import KEY, SECRET, make_config, start_server, status_of

from testing.client import signed_fields
from testing.rtc_client import ClipTrack, WhipClient, create_session

BLACK = [np.zeros((120, 160, 3), np.uint8)]
BOUNDARY = "hostile-boundary"


@pytest_asyncio.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    # room for the many sessions created to show the server still serves
    server = await start_server(make_config(sessions__max_active=500,
                                            sessions__per_key_per_minute=10_000))
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture):
    """Client errors leave no traceback in the service's log."""
    with caplog.at_level(logging.INFO, logger="service"):
        yield
    assert not [r for r in caplog.records if r.name.startswith("service") and r.exc_info]


async def send(http: aiohttp.ClientSession, method: str, url: str, body: bytes,
               content_type: str | None, **headers: str) -> tuple[int, dict[str, Any]]:
    skip = ["Content-Type"] if content_type is None else []
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with http.request(method, url, data=body, headers=headers,
                            skip_auto_headers=skip) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def assert_serving(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """A valid request is still served: a signed session creation answers 201."""
    status, session = await create_session(http, url, KEY, SECRET, challenges="blink")
    assert status == 201, session
    return session


def signed_form(**extra: str) -> dict[str, str]:
    return {**signed_fields(KEY, SECRET), **extra}


def urlencoded(fields: dict[str, str]) -> bytes:
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode()


def part(name: bytes | None, value: bytes, *headers: bytes) -> bytes:
    disposition = b"Content-Disposition: form-data" + (
        b'; name="' + name + b'"' if name is not None else b"")
    return b"\r\n".join([disposition, *headers, b"", value])


def multipart(*parts: bytes, boundary: str = BOUNDARY, close: bool = True) -> bytes:
    dash = b"--" + boundary.encode()
    body = b"".join(dash + b"\r\n" + p + b"\r\n" for p in parts)
    return body + (dash + b"--\r\n" if close else b"")


def signed_parts() -> list[bytes]:
    return [part(k.encode(), v.encode()) for k, v in signed_form(challenges="blink").items()]


MP = f"multipart/form-data; boundary={BOUNDARY}"
FORM = "application/x-www-form-urlencoded"

# (case, path, content type, body, extra headers, field the answer must name)
BODY_CASES: list[tuple[str, str, str, bytes, dict[str, str], str]] = [
    ("non-UTF-8 percent-escaped form value", "/api/verify", FORM,
     urlencoded(signed_form(typeId="21", img1="%ff%fe")), {}, "img1"),
    ("non-UTF-8 raw form value", "/v1/sessions", FORM,
     urlencoded(signed_form()) + b"&challenges=\xff", {}, "challenges"),
    ("non-UTF-8 multipart field name", "/api/verify", MP,
     multipart(*signed_parts(), part(b"img\xff", b"x")), {}, "body"),
    ("non-UTF-8 multipart value", "/v1/sessions", MP,
     multipart(*signed_parts()[:3], part(b"ttl", b"\xc3\x28")), {}, "ttl"),
    ("multipart without a closing boundary", "/api/verify", MP,
     multipart(*signed_parts(), close=False), {}, "body"),
    ("multipart part without a name", "/api/verify", MP,
     multipart(*signed_parts(), part(None, b"x")), {}, "body"),
    ("nested multipart", "/api/verify", MP,
     multipart(*signed_parts(), part(b"img", multipart(part(b"a", b"b"), boundary="inner"),
                                     b"Content-Type: multipart/mixed; boundary=inner")),
     {}, "img"),
    ("boundary over 70 characters", "/api/verify",
     "multipart/form-data; boundary=" + "b" * 71,
     multipart(*signed_parts(), boundary="b" * 71), {}, "body"),
    ("unknown charset of a form", "/api/verify", FORM + "; charset=klingon",
     urlencoded(signed_form()), {}, "body"),
    ("unknown charset of a part", "/v1/sessions", MP,
     multipart(*signed_parts()[:3],
               part(b"ttl", b"30", b"Content-Type: text/plain; charset=klingon")), {}, "ttl"),
    ("unknown Content-Transfer-Encoding", "/v1/sessions", MP,
     multipart(*signed_parts()[:3], part(b"ttl", b"MzA=", b"Content-Transfer-Encoding: base64")),
     {}, "ttl"),
    ("folded part header", "/api/verify", MP,
     multipart(*signed_parts(), b'Content-Disposition: form-data;\r\n name="img"\r\n\r\nx'),
     {}, "body"),
    ("over-long part header line", "/api/verify", MP,
     multipart(*signed_parts(), part(b"img", b"x", b"X-Pad: " + b"a" * 5000)), {}, "body"),
    ("too many part headers", "/api/verify", MP,
     multipart(*signed_parts(), part(b"img", b"x", *[b"X-%d: 1" % i for i in range(20)])),
     {}, "body"),
    ("too many fields", "/api/verify", FORM,
     urlencoded({f"f{i}": "1" for i in range(200)}), {}, "body"),
    ("a field sent twice", "/v1/sessions", FORM,
     urlencoded(signed_form()) + b"&token=" + b"0" * 64, {}, "token"),
    ("JSON nested 1000 deep", "/v1/sessions", "application/json",
     b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", {}, "body"),
    ("JSON nested object value", "/v1/sessions", "application/json",
     json.dumps({**signed_form(), "ttl": {"s": 30}}).encode(), {}, "ttl"),
    ("JSON duplicate name", "/v1/sessions", "application/json",
     json.dumps(signed_form())[:-1].encode() + b', "key": "other"}', {}, "key"),
    ("JSON NaN", "/v1/sessions", "application/json",
     json.dumps(signed_form())[:-1].encode() + b', "ttl": NaN}', {}, "body"),
    ("JSON not UTF-8", "/v1/sessions", "application/json",
     json.dumps(signed_form()).encode("utf-16"), {}, "body"),
    ("no content type", "/api/verify", None, urlencoded(signed_form()), {}, "body"),
    ("garbled content type", "/api/verify", "multipart/form-data; boundary", b"x", {}, "body"),
]


@pytest.mark.parametrize("case, path, ctype, body, headers, field", BODY_CASES,
                         ids=[c[0] for c in BODY_CASES])
async def test_malformed_body_answers_4001_naming_the_field(http, url, case, path, ctype, body,
                                                            headers, field):
    status, answer = await send(http, "POST", url + path, body, ctype, **headers)
    assert (status, status_of(answer)) == (400, "4001"), answer
    assert answer["infoList"] == []
    assert re.search(rf"field: {re.escape(field)}\b", answer["messageString"]["value"]), answer
    await assert_serving(http, url)


@pytest.mark.parametrize("coding, body", [("gzip", b"this is not gzip" * 20),
                                          ("deflate", b"\x00\x01\x02" * 20)])
async def test_body_with_a_broken_content_coding_answers_4001(http, url, coding, body):
    for path in ("/api/verify", "/v1/sessions"):
        status, answer = await send(http, "POST", url + path, body, FORM,
                                    **{"Content-Encoding": coding})
        assert (status, status_of(answer)) == (400, "4001"), answer
    await assert_serving(http, url)


async def test_gzip_body_of_a_valid_request_is_read(http, url):
    body = gzip.compress(urlencoded(signed_form(challenges="blink")))
    async with http.post(f"{url}/v1/sessions", data=body, headers={
            "Content-Type": FORM, "Content-Encoding": "gzip"}) as resp:
        assert resp.status == 201, await resp.text()


async def test_form_field_order_does_not_change_the_replay_fingerprint(http, url):
    fields = signed_form(challenges="blink")
    first = urlencoded(fields)
    reordered = urlencoded(dict(reversed(list(fields.items()))))
    status, _ = await send(http, "POST", f"{url}/v1/sessions", first, FORM)
    assert status == 201
    status, answer = await send(http, "POST", f"{url}/v1/sessions", reordered, FORM)
    assert (status, status_of(answer)) == (401, "4011")
    assert "replay" in answer["messageString"]["value"]


async def test_large_file_part_is_read_in_memory(http, url):
    """A 2 MiB part (aiohttp spooled parts over 1 MiB to a temporary file): read and
    ignored like any unknown field."""
    body = multipart(*signed_parts(), part(b"extra", b"\0" * (2 << 20),
                                           b'Content-Type: application/octet-stream'))
    async with http.post(f"{url}/v1/sessions", data=body, headers={"Content-Type": MP}) as r:
        assert r.status == 201, await r.text()


# --- sessions: tokens, WHIP offers, trickle PATCH ---


@pytest.mark.parametrize("change", [str.upper, lambda t: f" {t}", lambda t: f"{t} "])
async def test_vendor_token_in_uppercase_or_padded_answers_4010(http, url, change):
    fields = signed_form(challenges="blink")
    fields["token"] = change(fields["token"])
    status, answer = await send(http, "POST", f"{url}/v1/sessions",
                                json.dumps(fields).encode(), "application/json")
    assert (status, status_of(answer)) == (401, "4010")
    await assert_serving(http, url)


@pytest_asyncio.fixture(scope="module")
async def offer() -> str:
    """A real aiortc client's offer (VP8 with rtx, and the liveness data channel)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("liveness")
    transceiver = pc.addTransceiver(ClipTrack(BLACK), direction="sendonly")
    codecs = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in codecs
                                     if c.mimeType in ("video/VP8", "video/rtx")])
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest_asyncio.fixture(scope="module")
async def session(http, url) -> dict[str, Any]:
    """One session for every bad offer: a refused offer does not use it up."""
    return await assert_serving(http, url)


def auth(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['session_token']}"}


def without(sdp: str, prefix: str) -> str:
    return "".join(line for line in sdp.splitlines(True) if not line.startswith(prefix))


def rtx_payload_type(sdp: str) -> str:
    return re.search(r"a=rtpmap:(\d+) rtx/", sdp).group(1)


BAD_OFFERS = {
    "no a=mid": lambda sdp: without(sdp, "a=mid:"),
    "rtx rtpmap dropped": lambda sdp: without(sdp, f"a=rtpmap:{rtx_payload_type(sdp)} "),
    "rtx apt dropped": lambda sdp: without(sdp, f"a=fmtp:{rtx_payload_type(sdp)} "),
    "rtpmap without clock rate": lambda sdp: re.sub(r"VP8/90000", "VP8", sdp),
    "truncated m= line": lambda sdp: re.sub(r"(m=video \d+)[^\r\n]*", r"\1", sdp),
    "truncated candidate": lambda sdp: re.sub(r"(a=candidate:\S+ \d+ \S+)[^\r\n]*", r"\1", sdp,
                                              count=1),
    "candidate priority not a number": lambda sdp: re.sub(
        r"(a=candidate:\S+ \d+ \S+) \d+", r"\1 high", sdp, count=1),
    "no video": lambda sdp: sdp.split("m=video")[0] + "m=application" + sdp.split(
        "m=application")[1],
    "not SDP": lambda sdp: "hello",
    "unknown setup role": lambda sdp: sdp.replace("a=setup:actpass", "a=setup:holdconn"),
    "NUL byte": lambda sdp: sdp.replace("s=-", "s=\0"),
}


@pytest.mark.parametrize("name", BAD_OFFERS)
async def test_bad_sdp_offer_answers_4002(http, url, offer, session, name):
    bad = BAD_OFFERS[name](offer)
    status, answer = await send(http, "POST", session["whip_url"], bad.encode(),
                                "application/sdp", **auth(session))
    assert (status, status_of(answer)) == (400, "4002"), answer
    assert answer["messageString"]["value"].startswith("bad SDP offer: ")
    assert len(answer["messageString"]["value"]) < 120  # a short reason, no echo
    async with http.get(session["result_url"], headers=auth(session)) as resp:
        assert resp.status == 202  # the session is still there, unused


BAD_JSON_OFFERS = [
    ("sdp null", lambda sdp: json.dumps({"sdp": None, "type": "offer"}).encode(), "sdp"),
    ("no sdp", lambda sdp: json.dumps({"type": "offer"}).encode(), "sdp"),
    ("sdp a list", lambda sdp: json.dumps({"sdp": [sdp], "type": "offer"}).encode(), "sdp"),
    ("an answer", lambda sdp: json.dumps({"sdp": sdp, "type": "answer"}).encode(), "type"),
    ("nested deep", lambda sdp: b'{"sdp": ' + b"[" * 1000 + b"]" * 1000 + b"}", "body"),
    ("not an object", lambda sdp: b'"v=0"', "body"),
]


@pytest.mark.parametrize("name, make, field", BAD_JSON_OFFERS, ids=[c[0] for c in BAD_JSON_OFFERS])
async def test_bad_json_offer_answers_4001(http, url, offer, session, name, make, field):
    status, answer = await send(http, "POST", session["whip_url"], make(offer),
                                "application/json", **auth(session))
    assert (status, status_of(answer)) == (400, "4001"), answer
    assert f"field: {field}" in answer["messageString"]["value"]


async def test_offer_that_is_not_utf8_answers_4001(http, url, offer, session):
    body = offer.replace("s=-", "s=\udcff", 1).encode("utf-8", "surrogateescape")
    status, answer = await send(http, "POST", session["whip_url"], body, "application/sdp",
                                **auth(session))
    assert (status, status_of(answer)) == (400, "4001")
    assert "field: body" in answer["messageString"]["value"]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_wrong_content_type_answers_415_in_the_envelope(http, url, session, method):
    status, answer = await send(http, method, session["whip_url"], b"v=0\r\n", "text/plain",
                                **auth(session))
    assert (status, status_of(answer)) == (415, "4150")
    assert answer["infoList"] == []


BAD_FRAGMENTS = [
    ("short candidate", b"a=mid:0\r\na=candidate:1 1 udp 2130706431\r\n", "candidate"),
    ("priority not an integer", b"a=mid:0\r\na=candidate:1 1 udp high 127.0.0.1 9 typ host\r\n",
     "candidate"),
    ("port out of range", b"a=candidate:1 1 udp 1 127.0.0.1 70000 typ host\r\n", "candidate"),
    ("bad mid", b"a=mid:\x01\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n", "mid"),
    ("not UTF-8", b"a=mid:0\r\na=candidate:\xff 1 udp 1 127.0.0.1 9 typ host\r\n", "body"),
]


@pytest.mark.parametrize("name, frag, field", BAD_FRAGMENTS, ids=[c[0] for c in BAD_FRAGMENTS])
async def test_bad_trickle_fragment_answers_4001(http, url, session, name, frag, field):
    status, answer = await send(http, "PATCH", session["whip_url"], frag,
                                "application/trickle-ice-sdpfrag", **auth(session))
    assert (status, status_of(answer)) == (400, "4001"), answer
    assert f"field: {field}" in answer["messageString"]["value"]


async def test_padded_bearer_answers_4010(http, url, session):
    for header in (f"Bearer  {session['session_token']}", f"Bearer {session['session_token']}x"):
        async with http.get(session["result_url"], headers={"Authorization": header}) as resp:
            assert (resp.status, status_of(await resp.json())) == (401, "4010")


async def test_after_the_bad_offers_a_good_one_connects(http, url, session):
    client = WhipClient(session, http)
    try:
        assert await client.connect(ClipTrack(BLACK)) == 201
    finally:
        await client.hang_up()


async def test_wrong_bearers_on_every_session_endpoint_count_toward_the_lockout(http):
    server = await start_server(make_config(auth__max_failed_auth=3))
    try:
        url = str(server.make_url("")).rstrip("/")
        _, session = await create_session(http, url, KEY, SECRET, challenges="blink")
        wrong = {"Authorization": "Bearer wrong"}
        seen = []
        for method, target in (("GET", session["result_url"]), ("PATCH", session["whip_url"]),
                               ("DELETE", session["whip_url"]), ("GET", session["result_url"])):
            async with http.request(method, target, headers=wrong) as resp:
                seen.append(status_of(await resp.json()))
        assert seen == ["4010", "4010", "4010", "4290"]
        # locked: even the right token waits out the window, on polling and on WHIP
        async with http.get(session["result_url"], headers=auth(session)) as resp:
            assert (resp.status, status_of(await resp.json())) == (429, "4290")
        async with http.post(session["whip_url"], data="v=0", headers={
                **auth(session), "Content-Type": "application/sdp"}) as resp:
            assert (resp.status, status_of(await resp.json())) == (429, "4290")
    finally:
        await server.close()
