"""What an integrator's side looks like, for the client libraries' tests.

- `integrator_config`: a service with webhooks allowed to loopback, a second API key
  whose session quota the tests exhaust (4290), and a short body deadline (4080).
- `App`: the integrator's mobile app or page. The backend hands it the session's
  `for_app()` fields; it streams a real clip with the aiortc WHIP client and hangs up
  once the analysis runs, so the session is decided within a second or two. It can be
  driven in-process (Python tests) or over HTTP (`POST /start`, the Node tests).
- `Receiver`: the backend's webhook endpoint, recording each delivery's raw request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import cv2
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEY, SECRET, data_bytes, make_config

from service.config import Config
from testing.rtc_client import ClipTrack, WhipClient
from testing.videos import decode_all

CLIP = "blink/zju/000001M_FBN.mp4"
BURST_KEY, BURST_SECRET = "burst-key", "burst-secret"
SESSIONS_PER_MINUTE = 6  # per key: the burst key's 7th session answers 4290


def integrator_config() -> Config:
    return make_config(api_keys={KEY: SECRET, BURST_KEY: BURST_SECRET},
                       webhooks__allowed_hosts="127.0.0.1",
                       sessions__per_key_per_minute=SESSIONS_PER_MINUTE,
                       http__body_timeout_s=1.0)


def clip_frames() -> list[Any]:
    return decode_all(data_bytes(CLIP))[:30]


def portrait_of_clip() -> bytes:
    """An ID portrait of the clip's person: one of its frames as a JPEG."""
    return cv2.imencode(".jpg", clip_frames()[10])[1].tobytes()


@dataclass
class App:
    http: aiohttp.ClientSession
    streams: list[WhipClient] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def stream(self, session: dict[str, Any]) -> WhipClient:
        """Stream the clip to the session until its analysis runs, then hang up (WHIP
        DELETE): the session is decided on what it got."""
        client = WhipClient(session, self.http)
        self.streams.append(client)
        assert await client.connect(ClipTrack(clip_frames())) == 201
        try:
            async with asyncio.timeout(30):  # the first progress message: analysis runs
                while not client.messages:
                    await asyncio.sleep(0.05)
            assert await client.delete() == 200
            await asyncio.wait_for(client.result, 30)
        finally:
            await client.hang_up()
        return client

    async def start(self, request: web.Request) -> web.Response:
        """POST /start with the backend's `for_app()` JSON: streaming starts, 202."""
        session = await request.json()
        task = asyncio.create_task(self.stream(session))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.json_response({"started": session["session_id"]}, status=202)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.streams:
            await client.hang_up()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    deliveries: list[Delivery] = field(default_factory=list)

    async def hook(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def wait(self, n: int = 1, timeout: float = 30.0) -> list[Delivery]:
        async with asyncio.timeout(timeout):
            while len(self.deliveries) < n:
                await asyncio.sleep(0.05)
        return self.deliveries


async def serve(routes: list[web.RouteDef]) -> TestServer:
    app = web.Application()
    app.add_routes(routes)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server
