"""The event loop that carries the live sessions is never held while 10 MB uploads are
parsed, hashed and base64-decoded (issue 13: a 10 MB form once held it ~450 ms).

How a stall is measured: while the uploads run, every callback and task step the loop
runs (asyncio's Handle._run, wrapped for the test) is timed in CPU time of the loop's
thread, and the longest must stay under 20 ms. CPU time rather than wall-clock time or
the lag of a ticker, because on this shared 2-core machine (5 agents, VM steal) the OS
takes the CPU away for tens of milliseconds now and then with nothing blocking: a
ticker sleeping 5 ms on the loop (kept here for the failure message) wakes up to 50-70 ms
late at times, and after such a pause the loop catches up on several sockets' worth of
body data at once, so even the loop's CPU per tick mixes many callbacks. The CPU time of
one callback is neither: it is what the issue is about, one step that keeps every session
waiting. What it cannot see is the loop waiting for the GIL while another thread holds
it in one long C call; that is why large bodies are parsed in worker processes
(service.api.body_parser), not threads (a thread parsing a JSON body made the ticker 35
ms late), and why the threads that feed them only copy bytes.

`test_the_watch_sees_a_parse_on_the_loop` shows the measure is not blind: the same
parse run on the loop, as before, is one step of more than 20 ms.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import numpy as np
import pytest
import pytest_asyncio
from conftest import KEY, SECRET, data_bytes, make_config, start_server

from service.api.forms import ContentType, FormSettings
from service.api.request import parse_request
from testing.client import signed_fields

# A stall of the loop this long is a stall a live session notices (issue 13).
MAX_STALL_S = 0.020
TICK_S = 0.005
# Bodies of the size the spec allows (10 MB); the request limit is 10 MiB.
BODY_BYTES = 9_900_000
PHOTO = "faces/face_recognition/obama__obama2.jpg"
SECOND = "faces/face_recognition/obama__obama-240p.jpg"
FORM = "application/x-www-form-urlencoded"
REQUESTS_PER_KIND = 3


def padded_jpeg(photo: bytes, size: int, seed: int) -> bytes:
    """`photo` made `size` bytes long with comment (COM) segments of random bytes after
    its start marker: a valid JPEG as large as an upload may be (and as hard to
    compress or base64-encode), that decodes as fast as the photo itself."""
    rng = np.random.default_rng(seed)
    segments = [photo[:2]]
    room = size - len(photo)
    while room > 4:
        payload = min(65533, room - 4)
        segments.append(b"\xff\xfe" + (payload + 2).to_bytes(2, "big")
                        + rng.bytes(payload))
        room -= payload + 4
    segments.append(photo[2:])
    return b"".join(segments)


def form_body(photo: bytes) -> bytes:
    fields = {**signed_fields(KEY, SECRET), "typeId": "21",
              "img1": base64.b64encode(photo).decode(),
              "img2": base64.b64encode(data_bytes(SECOND)).decode()}
    return urllib.parse.urlencode(fields).encode()


def multipart_body(photo: bytes, boundary: str) -> bytes:
    def part(name: str, value: bytes, file: bool = False) -> bytes:
        disposition = f'form-data; name="{name}"' + (f'; filename="{name}.jpg"' if file else "")
        extra = "\r\nContent-Type: image/jpeg" if file else ""
        return (f"--{boundary}\r\nContent-Disposition: {disposition}{extra}\r\n\r\n".encode()
                + value + b"\r\n")

    fields = {**signed_fields(KEY, SECRET), "typeId": "21"}
    return (b"".join(part(n, v.encode()) for n, v in fields.items())
            + part("img1", photo, True) + part("img2", data_bytes(SECOND), True)
            + f"--{boundary}--\r\n".encode())


def json_body(photo: bytes) -> bytes:
    """A session created with a portrait, the one JSON body of the API."""
    return json.dumps({**signed_fields(KEY, SECRET), "challenges": "blink",
                       "img": base64.b64encode(photo).decode()}).encode()


def sized(build: Callable[[bytes], bytes], seed: int) -> bytes:
    """`build(photo)` with the photo padded so the whole body is ~BODY_BYTES (base64 and
    percent-escapes grow the padding by a fixed ratio, measured on 1 MB of it)."""
    photo = data_bytes(PHOTO)
    plain = len(build(photo))
    ratio = (len(build(padded_jpeg(photo, len(photo) + 1_000_000, seed))) - plain) / 1e6
    return build(padded_jpeg(photo, len(photo) + int((BODY_BYTES - plain) / ratio), seed))


def post(port: int, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    """One request from a client thread: the client's work stays off the server's loop."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


class LoopWatch:
    """The longest callback of the running loop in CPU seconds of its thread, and the
    lag of a TICK_S ticker, while the watch is on."""

    def __init__(self) -> None:
        self.longest = (0.0, "")
        self.lags: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._run = asyncio.events.Handle._run

    async def __aenter__(self) -> Self:
        run = self._run

        def timed(handle: asyncio.events.Handle) -> None:
            started = time.thread_time()
            run(handle)
            spent = time.thread_time() - started
            if spent > self.longest[0]:  # a task's step is named by its task
                owner = getattr(getattr(handle, "_callback", None), "__self__", None)
                self.longest = (spent, repr(owner if isinstance(owner, asyncio.Task)
                                            else handle)[:200])

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            assert self._task is not None
            await asyncio.wait_for(self._task, 5)
        finally:
            asyncio.events.Handle._run = self._run  # type: ignore[method-assign]

    async def _tick(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.lags.append(time.perf_counter() - started - TICK_S)

    def report(self) -> str:
        lags = sorted(self.lags)
        return (f"longest step {self.longest[0] * 1000:.1f} ms CPU: {self.longest[1]}; "
                f"ticker lag p50 {lags[len(lags) // 2] * 1000:.1f} ms, "
                f"max {lags[-1] * 1000:.1f} ms over {len(lags)} ticks")


@pytest_asyncio.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    server = await start_server(make_config())
    assert server.port is not None
    yield server.port
    await server.close()


@pytest.fixture(scope="module")
def bodies() -> list[tuple[str, bytes, str]]:
    """(path, body, content type): REQUESTS_PER_KIND of each kind, built before the
    measurement (each signed anew, or the second would be a replay)."""
    out = []
    for i in range(REQUESTS_PER_KIND):
        boundary = f"stall-test-{i}"
        out += [("/api/verify", sized(form_body, i), FORM),
                ("/api/verify", sized(lambda p, b=boundary: multipart_body(p, b), i),
                 f"multipart/form-data; boundary={boundary}"),
                ("/v1/sessions", sized(json_body, i), "application/json")]
    for _, body, _ in out:
        assert BODY_BYTES * 0.97 < len(body) <= make_config().max_request_bytes
    return out


async def test_ten_megabyte_uploads_do_not_stall_the_loop(port, bodies):
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=REQUESTS_PER_KIND) as clients:
        async with LoopWatch() as watch:
            answers = await asyncio.wait_for(asyncio.gather(*(
                loop.run_in_executor(clients, post, port, path, body, ctype)
                for path, body, ctype in bodies)), 300)
    for (path, _, ctype), (status, answer) in zip(bodies, answers):
        # the whole path ran: parsed, authenticated, decoded, faces compared / embedded
        expected = (201, None) if path == "/v1/sessions" else (200, "2000")
        got = (status, answer.get("messageString", {}).get("status") if status == 200 else None)
        assert got == expected, (ctype, answer)
    assert len(watch.lags) > 20, watch.report()  # the loop kept turning meanwhile
    assert watch.longest[0] < MAX_STALL_S, watch.report()


async def test_the_watch_sees_a_parse_on_the_loop(bodies):
    _, body, ctype = bodies[0]

    async def parse_here() -> None:
        parse_request(body, ContentType(ctype, {}), ("img1", "img2"), FormSettings())

    async with LoopWatch() as watch:
        await asyncio.sleep(3 * TICK_S)
        await parse_here()
        await asyncio.sleep(3 * TICK_S)
    assert watch.longest[0] > MAX_STALL_S, watch.report()
    assert "test_the_watch_sees_a_parse_on_the_loop" in watch.longest[1], watch.report()
