"""The Python client (clients/python, the installed package) used as an integrator's
backend uses it, against the real service on loopback.

A face comparison; liveness of an image and a video; a session created with a portrait
and a callback, streamed by the app (a real aiortc WHIP client), decided and read
through the client, its webhook verified and forgeries refused; and every error status
of the service raised as its own exception class.
"""

from __future__ import annotations

import asyncio
import filecmp
import json
import re
import socket
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
import pytest_asyncio
import verification_client as vc
from aiohttp import web
from conftest import DATA, KEY, ROOT, SECRET, data_bytes, png_claiming, start_server
from integrator import (
    BURST_KEY,
    BURST_SECRET,
    SESSIONS_PER_MINUTE,
    App,
    Receiver,
    clip_frames,
    integrator_config,
    portrait_of_clip,
    serve,
)
from verification_client import AsyncClient, Client

import service.errors
from testing.rtc_client import ClipTrack, WhipClient

SAME = ("faces/face_recognition/obama__obama.jpg", "faces/face_recognition/obama__obama1.jpg")
OTHER = "faces/face_recognition/biden__biden.jpg"
SPOOF = "spoof/silent_face/image_T1.jpg"
VIDEO = "blink/zju/000001M_FBN.mp4"


@pytest_asyncio.fixture(scope="module")
async def service_url() -> AsyncIterator[str]:
    server = await start_server(integrator_config())
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest_asyncio.fixture
async def aclient(service_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(service_url, KEY, SECRET) as client:
        yield client


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    server = await serve([web.post("/hook", receiver.hook)])
    yield receiver, str(server.make_url("/hook"))
    await server.close()


def test_the_tests_use_the_installed_package_built_from_this_tree():
    installed = Path(vc.__file__).parent
    source = ROOT / "clients/python/src/verification_client"
    assert "site-packages" in installed.parts, installed
    names = sorted(p.name for p in source.glob("*.py"))
    match, mismatch, errors = filecmp.cmpfiles(source, installed, names, shallow=False)
    assert not mismatch and not errors, (
        f"the installed client differs from {source} in {mismatch + errors}: "
        "reinstall it (make install, or pip install ./clients/python)")


async def test_face_comparison_sync_from_paths_and_async_from_bytes(service_url, aclient):
    client = Client(service_url, KEY, SECRET)
    same = await asyncio.to_thread(client.compare_faces, DATA / SAME[0], str(DATA / SAME[1]))
    assert (same.verdict, same.same_person) == ("yes", True) and 50 <= same.value <= 100
    assert same.envelope["messageString"]["status"] == "2000" and same.detail
    other = await aclient.compare_faces(data_bytes(SAME[0]), data_bytes(OTHER))
    assert (other.verdict, other.same_person) == ("no", False) and 0 <= other.value < 50


async def test_liveness_of_an_image_and_of_a_video(aclient):
    spoof = await aclient.check_liveness(data_bytes(SPOOF))
    assert isinstance(spoof, vc.SilentLiveness)
    assert spoof.verdict in (vc.results.LIVE, vc.results.NOT_LIVE)
    assert spoof.live == (spoof.value >= 50)
    video = await aclient.check_liveness(DATA / VIDEO)
    assert isinstance(video, vc.VideoLiveness)
    assert video.live and video.verdict == "Living body" and video.reasons == []
    assert video.blinked and any(c.kind == "blink" for c in video.cues)
    assert all(isinstance(c.t, float) for c in video.cues)


async def test_a_session_decided_through_the_clients_calls_and_its_webhook(
        aclient, receiver, http):
    hook, hook_url = receiver
    session = await aclient.create_session(portrait=portrait_of_clip(), challenges=0,
                                           ttl=60, callback_url=hook_url)
    assert session.challenges == [] and 59 <= session.ttl_s <= 60
    assert await aclient.result(session, wait=False) is None  # pending
    app = App(http)
    # the backend hands the app what it needs to stream, never the API secret
    handed = json.loads(json.dumps(session.for_app()))
    assert SECRET not in json.dumps(handed)
    await app.stream(handed)
    result = await aclient.result(session, timeout_s=60)
    assert isinstance(result, vc.SessionResult)
    assert result.verdict in ("Living body", "Non-living body")
    assert result.comparison is not None and result.comparison.same_person
    assert result.live == (not result.reasons)
    assert result.detail["ended_by"]
    # the webhook: verified with the secret, its result equal to the polled one
    (delivery,) = await hook.wait(1)
    webhook = vc.verify_webhook(delivery.headers, delivery.body, SECRET)
    assert len(webhook.webhook_id) == 32 and abs(webhook.timestamp - time.time()) < 120
    assert webhook.result == result
    lower = {k.lower(): v for k, v in delivery.headers.items()}
    assert vc.verify_webhook(lower, delivery.body, SECRET).result == result
    # forgeries: another body, another secret, a replay after the tolerance, no signature
    forged = [
        (delivery.headers, flipped_verdict(delivery.body), SECRET),
        (delivery.headers, delivery.body + b" ", SECRET),
        (delivery.headers, delivery.body, "not-the-secret"),
        ({**delivery.headers, "X-Signature": "0" * 64}, delivery.body, SECRET),
        ({k: v for k, v in delivery.headers.items() if k != "X-Signature"},
         delivery.body, SECRET),
    ]
    for headers, body, secret in forged:
        with pytest.raises(vc.WebhookVerificationError):
            vc.verify_webhook(headers, body, secret)
    with pytest.raises(vc.WebhookVerificationError, match="tolerance"):
        vc.verify_webhook(delivery.headers, delivery.body, SECRET,
                          now=webhook.timestamp + 301)
    # an old delivery re-signed by someone holding only an old signature: still refused
    old = str(webhook.timestamp - 1000)
    with pytest.raises(vc.WebhookVerificationError):
        vc.verify_webhook({**delivery.headers, "X-Timestamp": old}, delivery.body, SECRET)


def flipped_verdict(body: bytes) -> bytes:
    live, not_live = b'"Living body"', b'"Non-living body"'
    forged = body.replace(not_live, live) if not_live in body else body.replace(live, not_live)
    assert forged != body
    return forged


async def test_a_stored_session_is_read_back_by_another_process(service_url, aclient):
    session = await aclient.create_session(challenges=0)
    stored = json.dumps(session.to_json())
    again = vc.Session.from_json(json.loads(stored))
    assert again == session
    await aclient.end_session(again)  # no media: it ends without a decision
    with pytest.raises(vc.SessionExpiredError) as err:
        await asyncio.to_thread(Client(service_url, KEY, SECRET).result, again)
    assert (err.value.envelope_status, err.value.http_status) == ("4100", 410)


def readme_snippet(marker: str, lang: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\n```{lang}\n(.*?)```", text, re.DOTALL)
    assert match, f"README.md has no {marker} block"
    return match.group(1)


async def test_the_readmes_integrating_snippet_runs_as_it_stands(
        service_url, receiver, http, tmp_path, monkeypatch):
    for name, value in (("VERIFY_URL", service_url), ("VERIFY_KEY", KEY),
                        ("VERIFY_SECRET", SECRET)):
        monkeypatch.setenv(name, value)
    backend = types.ModuleType("integrating")
    exec(compile(readme_snippet("integrating-python", "python"), "README.md", "exec"),
         backend.__dict__)
    (tmp_path / "id.jpg").write_bytes(portrait_of_clip())
    hook, hook_url = receiver
    # the sync client in a thread: this test's event loop also runs the service
    for_app = await asyncio.to_thread(backend.start_verification, "user-1",
                                      str(tmp_path / "id.jpg"), hook_url)
    assert set(for_app) == {"session_id", "session_token", "whip_url", "result_url",
                            "ice_servers"}
    await App(http).stream(for_app)
    (delivery,) = await hook.wait(1)
    webhook_id, passed = backend.on_webhook(delivery.headers, delivery.body)
    assert len(webhook_id) == 32
    assert await asyncio.to_thread(backend.outcome, "user-1") is passed
    with pytest.raises(vc.WebhookVerificationError):
        backend.on_webhook(delivery.headers, delivery.body + b" ")


# --- every error status as its exception ---------------------------------------------

def service_error_classes() -> list[type[service.errors.ApiError]]:
    return [c for c in vars(service.errors).values() if isinstance(c, type)
            and issubclass(c, service.errors.ApiError)]


def test_every_status_the_service_can_answer_has_its_own_exception_class():
    statuses = {c.status: c.http_status for c in service_error_classes()}
    assert set(statuses) == set(vc.ERRORS), "a service status without a client class"
    assert len(set(vc.ERRORS.values())) == len(vc.ERRORS)
    for status, http_status in statuses.items():
        body = json.dumps({"infoList": [], "messageString": {"status": status,
                                                             "value": "why"}}).encode()
        with pytest.raises(vc.ERRORS[status]) as err:
            vc.parse_envelope(http_status, body)
        assert (err.value.envelope_status, err.value.value, err.value.http_status) == (
            status, "why", http_status)
        assert isinstance(err.value, vc.ApiError)
    for retry in ("4290", "5000", "5030"):
        assert vc.ERRORS[retry].retryable
    assert not vc.ERRORS["4010"].retryable
    with pytest.raises(vc.TransportError):
        vc.parse_envelope(502, b"<html>Bad gateway</html>")
    with pytest.raises(vc.ApiError) as err:  # a status from a newer service
        vc.parse_envelope(400, b'{"messageString": {"status": "4999", "value": "new"}}')
    assert type(err.value) is vc.ApiError and err.value.envelope_status == "4999"


async def expect(error: type[vc.ApiError], call) -> vc.ApiError:
    with pytest.raises(error) as err:
        await call
    assert err.value.envelope_status == error.status
    return err.value


async def test_refusals_of_the_clients_own_calls_raise_their_exception(service_url, aclient):
    face = data_bytes(SAME[0])
    blank = cv2.imencode(".png", np.full((300, 300, 3), 200, np.uint8))[1].tobytes()
    blurred = cv2.imencode(".jpg", cv2.GaussianBlur(cv2.imread(str(DATA / SPOOF)),
                                                    (0, 0), 6))[1].tobytes()
    await expect(vc.MalformedFieldError, aclient.verify(21, img1=face))
    await expect(vc.BadMediaError, aclient.compare_faces(b"plain text, not a photo", face))
    await expect(vc.NoFaceError, aclient.compare_faces(face, blank))
    await expect(vc.SeveralFacesError, aclient.compare_faces(
        DATA / "faces/face_recognition/two_people.jpg", face))
    low = await expect(vc.LowQualityError, aclient.check_liveness(blurred))
    assert "blurred" in low.value and low.http_status == 200
    await expect(vc.UnknownTypeError, aclient.verify(999, img=face))
    await expect(vc.PayloadTooLargeError, aclient.compare_faces(png_claiming(12000, 10000),
                                                                face))
    async with AsyncClient(service_url, KEY, "wrong secret") as wrong:
        await expect(vc.AuthenticationError, wrong.compare_faces(face, face))
    fake = vc.Session.from_json({"session_id": "nosuchsession", "session_token": "t" * 32,
                                 "whip_url": f"{service_url}/v1/sessions/nosuchsession/whip",
                                 "result_url": f"{service_url}/v1/sessions/nosuchsession/result"})
    await expect(vc.NotFoundError, aclient.result(fake))
    await expect(vc.MalformedFieldError, aclient.create_session(challenges=["dance"]))
    await expect(vc.MalformedFieldError, aclient.create_session(callback_url="ftp://x/"))
    # the burst key's quota of sessions per minute: one more is refused, retryable
    async with AsyncClient(service_url, BURST_KEY, BURST_SECRET) as burst:
        for _ in range(SESSIONS_PER_MINUTE):
            await burst.end_session(await burst.create_session(challenges=0))
        limited = await expect(vc.RateLimitedError, burst.create_session(challenges=0))
        assert limited.retryable and limited.http_status == 429
    with pytest.raises(vc.TransportError):  # nothing listens there
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", KEY, SECRET) as nowhere:
            await nowhere.compare_faces(face, face)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def parsed(resp: aiohttp.ClientResponse) -> vc.ApiError:
    """A live answer to a request no client would send, through the client's parser."""
    with pytest.raises(vc.ApiError) as err:
        vc.parse_envelope(resp.status, await resp.read())
    return err.value


async def test_refusals_of_requests_a_client_never_sends_map_to_their_exception(
        service_url, aclient, http):
    fields = vc.signed_fields(KEY, SECRET, now=time.time() - 3600)
    async with http.post(f"{service_url}/api/verify", data={**fields, "typeId": "21"}) as r:
        assert isinstance(await parsed(r), vc.StaleTimestampError)
    async with http.get(f"{service_url}/api/verify") as r:
        assert isinstance(await parsed(r), vc.MethodNotAllowedError)
    async with http.post(f"{service_url}/api/verify", data=b"x", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Expect": "x-unknown"}) as r:
        assert isinstance(await parsed(r), vc.ExpectationFailedError)
    assert isinstance(await stalled_upload(service_url), vc.RequestTimeoutError)
    # an offer that is not SDP: 4150; a second offer for a session that has its peer
    # connection: 4090
    session = await aclient.create_session(challenges=0)
    whip = WhipClient(session.for_app(), http)
    bearer = {"Authorization": f"Bearer {session.session_token}"}
    try:
        async with http.post(session.whip_url, data=b"x", headers={
                **bearer, "Content-Type": "text/plain"}) as r:
            assert isinstance(await parsed(r), vc.UnsupportedMediaTypeError)
        assert await whip.connect(ClipTrack(clip_frames())) == 201
        async with http.post(session.whip_url, data=whip.pc.localDescription.sdp, headers={
                **bearer, "Content-Type": "application/sdp"}) as r:
            assert isinstance(await parsed(r), vc.SessionConflictError)
    finally:
        await aclient.end_session(session)
        await whip.hang_up()


async def stalled_upload(service_url: str) -> vc.ApiError:
    """Headers promising a body that never comes: 4080 after the body deadline."""
    port = int(service_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /api/verify HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nkey=")
        await writer.drain()
        async with asyncio.timeout(30):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            body = await reader.readexactly(length)
        status = int(head.split(b" ")[1])
    finally:
        writer.close()
    with pytest.raises(vc.ApiError) as err:
        vc.parse_envelope(status, body)
    return err.value
