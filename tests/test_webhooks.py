"""Webhooks: a decided session's result POSTed, signed, to a real receiver on loopback.

The receiver is a real aiohttp server whose answers are scripted per attempt (ok, fail,
hang, redirect); sessions are real: an aiortc client streams a clip, and the session is
ended (DELETE) as soon as its analysis runs, so it is decided within a second or two.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEY, SECRET, data_bytes, make_config, start_server, status_of

from service.errors import MalformedField
from service.ops.metrics import METRICS
from service.ops.webhooks import WebhookSettings, check_callback_url
from service.rtc.routes import MANAGER
from testing.rtc_client import ClipTrack, WhipClient, create_session
from testing.videos import decode_all

CLIP = "blink/zju/000001M_FBN.mp4"
# Short retries, so a failing receiver is given up on in about a second.
RETRIES = {"webhooks__allowed_hosts": "127.0.0.1", "webhooks__timeout_s": 0.5,
           "webhooks__backoff_s": 0.05, "webhooks__max_attempts": 3,
           "webhooks__max_total_s": 10.0}


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers attempt n with plan[n] (the last entry repeats): "ok" 200, "fail" 500,
    "hang" (no answer until released), "redirect" 307 to /elsewhere."""

    plan: list[str]
    calls: list[Call] = field(default_factory=list)
    elsewhere: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def hook(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call(request.path_qs, dict(request.headers), await request.read()))
        mode = self.plan[min(len(self.calls), len(self.plan)) - 1]
        if mode == "hang":
            try:
                await asyncio.wait_for(self.release.wait(), 30)
            except TimeoutError:
                pass
        if mode == "fail":
            return web.Response(status=500)
        if mode == "redirect":
            return web.Response(status=307, headers={"Location": "/elsewhere"})
        return web.Response(status=200)

    async def other(self, request: web.Request) -> web.Response:
        self.elsewhere += 1
        return web.Response(status=200)

    async def wait_calls(self, n: int, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.calls) < n:
                await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def receiver_factory() -> AsyncIterator[Any]:
    servers: list[tuple[TestServer, Receiver]] = []

    async def make(plan: list[str]) -> Receiver:
        receiver = Receiver(plan)
        app = web.Application()
        app.router.add_post("/hook", receiver.hook)
        app.router.add_post("/elsewhere", receiver.other)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        receiver.url = str(server.make_url("/hook?tenant=42"))
        servers.append((server, receiver))
        return receiver

    yield make
    for server, receiver in servers:
        receiver.release.set()
        await server.close()


@pytest_asyncio.fixture(scope="module")
async def hook_server() -> AsyncIterator[TestServer]:
    server = await start_server(make_config(**RETRIES))
    yield server
    await server.close()


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def sample(server: TestServer, name: str, **labels: str) -> float:
    return server.app[METRICS].registry.get_sample_value(name, labels) or 0.0


async def decided_session(http: aiohttp.ClientSession, url: str, callback_url: str
                          ) -> tuple[dict[str, Any], dict[str, Any], WhipClient]:
    """A session with the callback, decided: (session, data-channel result, client)."""
    status, session = await create_session(http, url, KEY, SECRET, challenges="0",
                                           callback_url=callback_url)
    assert status == 201, session
    client = WhipClient(session, http)
    assert await client.connect(ClipTrack(decode_all(data_bytes(CLIP))[:30])) == 201
    try:
        async with asyncio.timeout(30):  # the first progress message: analysis runs
            while not client.messages:
                await asyncio.sleep(0.05)
        assert await client.delete() == 200
        payload = await asyncio.wait_for(client.result, 30)
    finally:
        await client.hang_up()
    return session, payload, client


def check_signature(call: Call) -> None:
    timestamp = call.headers["X-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + call.body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(call.headers["X-Signature"], expected)
    assert abs(int(timestamp) - time.time()) < 60


async def test_the_result_is_delivered_signed(http, hook_server, receiver_factory):
    receiver = await receiver_factory(["ok"])
    delivered = sample(hook_server, "service_webhook_deliveries_total", outcome="delivered")
    _, payload, client = await decided_session(http, url_of(hook_server), receiver.url)
    await receiver.wait_calls(1)
    (call,) = receiver.calls
    assert call.path == "/hook?tenant=42"  # the URL as given, query included
    assert call.headers["Content-Type"] == "application/json"
    check_signature(call)
    assert len(call.headers["X-Webhook-Id"]) == 32
    # the body is the result: as the data channel carried it and as GET result answers
    assert json.loads(call.body) == payload
    status, stored = await client.poll_result()
    assert status == 200 and json.loads(call.body) == stored
    async with asyncio.timeout(10):
        while sample(hook_server, "service_webhook_deliveries_total",
                     outcome="delivered") == delivered:
            await asyncio.sleep(0.05)
    # a tampered body does not verify
    forged = Call(call.path, call.headers, call.body.replace(b"2000", b"2001"))
    with pytest.raises(AssertionError):
        check_signature(forged)


async def test_a_receiver_failing_twice_gets_three_attempts_with_one_id(
        http, hook_server, receiver_factory):
    receiver = await receiver_factory(["fail", "fail", "ok"])
    failed = sample(hook_server, "service_webhook_attempts_total", result="non_2xx")
    await decided_session(http, url_of(hook_server), receiver.url)
    await receiver.wait_calls(3)
    await asyncio.sleep(0.3)  # no fourth attempt follows a success
    assert len(receiver.calls) == 3
    assert len({c.headers["X-Webhook-Id"] for c in receiver.calls}) == 1
    assert len({c.body for c in receiver.calls}) == 1
    for call in receiver.calls:
        check_signature(call)
    assert sample(hook_server, "service_webhook_attempts_total",
                  result="non_2xx") == failed + 2


async def test_a_hanging_receiver_times_out_and_retries_a_bounded_number_of_times(
        http, hook_server, receiver_factory):
    receiver = await receiver_factory(["hang"])
    failed = sample(hook_server, "service_webhook_deliveries_total", outcome="failed")
    timeouts = sample(hook_server, "service_webhook_attempts_total", result="timeout")
    await decided_session(http, url_of(hook_server), receiver.url)
    async with asyncio.timeout(30):  # 3 attempts of 0.5 s and two short pauses
        while sample(hook_server, "service_webhook_deliveries_total",
                     outcome="failed") == failed:
            await asyncio.sleep(0.05)
    assert len(receiver.calls) == 3
    assert len({c.headers["X-Webhook-Id"] for c in receiver.calls}) == 1
    assert sample(hook_server, "service_webhook_attempts_total",
                  result="timeout") == timeouts + 3


async def test_redirects_are_not_followed(http, hook_server, receiver_factory):
    receiver = await receiver_factory(["redirect"])
    failed = sample(hook_server, "service_webhook_deliveries_total", outcome="failed")
    await decided_session(http, url_of(hook_server), receiver.url)
    async with asyncio.timeout(30):
        while sample(hook_server, "service_webhook_deliveries_total",
                     outcome="failed") == failed:
            await asyncio.sleep(0.05)
    assert len(receiver.calls) == 3 and receiver.elsewhere == 0


async def create_with(http: aiohttp.ClientSession, url: str, callback: str
                      ) -> tuple[int, dict[str, Any]]:
    return await create_session(http, url, KEY, SECRET, challenges="0",
                                callback_url=callback)


async def test_a_host_not_on_the_allow_list_is_refused_at_creation(http, hook_server,
                                                                   receiver_factory):
    receiver = await receiver_factory(["ok"])
    sessions = hook_server.app[MANAGER].store.sessions
    before = len(sessions)
    status, body = await create_with(http, url_of(hook_server),
                                     receiver.url.replace("127.0.0.1", "localhost"))
    assert (status, status_of(body)) == (400, "4001")
    assert "callback_url" in body["messageString"]["value"]
    assert "allow-list" in body["messageString"]["value"]
    assert len(sessions) == before  # refused before any session exists


@pytest.mark.parametrize("callback", [
    "ftp://127.0.0.1/hook", "file:///etc/passwd", "javascript:alert(1)",
    "ws://127.0.0.1/hook", "http://user:pw@127.0.0.1/hook", "http:///hook",
    "/relative/hook", "http://127.0.0.1:99999/hook", "http://127.0.0.1/a b",
])
async def test_other_schemes_and_malformed_urls_are_refused(http, hook_server, callback):
    status, body = await create_with(http, url_of(hook_server), callback)
    assert (status, status_of(body)) == (400, "4001"), body
    assert "callback_url" in body["messageString"]["value"]


async def test_with_no_allowed_hosts_webhooks_are_off(http, base_url):
    status, body = await create_with(http, base_url, "http://127.0.0.1/hook")
    assert (status, status_of(body)) == (400, "4001")
    assert "disabled" in body["messageString"]["value"]


async def test_shutdown_cancels_a_pending_delivery(http, receiver_factory):
    receiver = await receiver_factory(["hang"])
    server = await start_server(make_config(**{**RETRIES, "webhooks__timeout_s": 60.0}))
    try:
        await decided_session(http, url_of(server), receiver.url)
        await receiver.wait_calls(1)
    finally:
        async with asyncio.timeout(20):  # not the 60 s the attempt would take
            await server.close()
    assert sample(server, "service_webhook_deliveries_total", outcome="cancelled") == 1
    assert len(receiver.calls) == 1


@pytest.mark.parametrize("allowed, url, ok", [
    (("hooks.example",), "https://HOOKS.example/x", True),
    (("hooks.example",), "https://hooks.example:8443/x", True),
    (("hooks.example:443",), "https://hooks.example/x", True),
    (("hooks.example:443",), "https://hooks.example:8443/x", False),
    (("hooks.example",), "https://hooks.example.evil.example/x", False),
    (("hooks.example",), "https://evil.example/?next=hooks.example", False),
    (("bücher.example",), "https://xn--bcher-kva.example/x", True),
    (("[::1]:9000",), "http://[::1]:9000/x", True),
])
def test_allow_list_matching(allowed, url, ok):
    settings = WebhookSettings(allowed_hosts=allowed)
    if ok:
        assert check_callback_url(url, settings).path == "/x"
    else:
        with pytest.raises(MalformedField):
            check_callback_url(url, settings)
