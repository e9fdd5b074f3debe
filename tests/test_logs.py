"""Structured logs: one JSON object per line, with ids, and nothing a log must not hold.

The main test runs `python -m service` with SERVICE_LOG_FORMAT=json, as an operator
would, drives a realistic sequence against it (vendor API calls of both typeIds, their
failures, a streaming session with a portrait, an events reader and a webhook, result
polls by bearer and by query string, a scrape) and scans every line the process wrote
to stderr.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEY, MODEL_DIR, ROOT, SECRET, data_bytes

from service.config import load_config
from service.ops.logs import REQUEST_ID, SESSION_ID, ContextFilter, JsonFormatter, configure_logging
from testing.client import signed_fields
from testing.rtc_client import ClipTrack, EventStream, WhipClient
from testing.videos import decode_all

CLIP = "blink/zju/000001M_FBN.mp4"
PORTRAIT = "faces/deepface/img3.jpg"
# What no log line may contain: base64 of a JPEG or PNG, a query string's fields, a run
# of eight or more numbers with decimals (an embedding or landmark vector).
FORBIDDEN = {
    "base64 JPEG": re.compile(r"/9j/"),
    "base64 PNG": re.compile(r"iVBOR"),
    "query string": re.compile(r"[?&](key|timestamp|token|typeId|tenant)="),
    "float vector": re.compile(r"(-?\d+\.\d+(e-?\d+)?\s*,\s*){7,}-?\d+\.\d+"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Run:
    """The client side of the run: every credential it used, to look for in the log."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.credentials: set[str] = {SECRET}

    def signed(self, secret: str = SECRET, timestamp: str | None = None, **extra: str
               ) -> dict[str, str]:
        fields = {**signed_fields(KEY, secret, timestamp), **extra}
        self.credentials.add(fields["token"])
        return fields

    async def verify(self, fields: dict[str, Any], **kw: Any) -> tuple[int, str]:
        async with self.http.post(f"{self.url}/api/verify", data=fields, **kw) as resp:
            return resp.status, (await resp.json())["messageString"]["status"]


def b64(path: str) -> str:
    return base64.b64encode(data_bytes(path)).decode()


async def api_calls(run: Run) -> list[tuple[int, str]]:
    """Both typeIds and their usual failures; (HTTP status, envelope status) each."""
    face, other = b64(PORTRAIT), b64("faces/deepface/img12.jpg")
    answers = [
        await run.verify(run.signed(typeId="21", img1=face, img2=other)),
        await run.verify(run.signed(typeId="3035", img=b64("spoof/silent_face/image_T1.jpg"))),
        await run.verify(run.signed(typeId="3035", img=b64(CLIP))),
        await run.verify(run.signed(secret="wrong", typeId="21", img1=face, img2=other)),
        await run.verify(run.signed(timestamp="1000", typeId="21", img1=face, img2=other)),
        await run.verify(run.signed(typeId="42", img=face)),
        await run.verify(run.signed(typeId="3035", img="%%% not base64 %%%")),
        await run.verify(run.signed(typeId="3035",
                                    img=base64.b64encode(b"\x00" * 300).decode())),
        await run.verify(run.signed(typeId="21", img1=face, img2=other)),
    ]
    replayed = run.signed(typeId="3035", img=face)
    answers.append(await run.verify(replayed))
    answers.append(await run.verify(replayed))  # the same request again: a replay
    form = aiohttp.FormData({**run.signed(typeId="3035")})
    form.add_field("img", data_bytes(PORTRAIT), filename="selfie.jpg",
                   content_type="image/jpeg")
    answers.append(await run.verify(form))
    async with run.http.post(f"{run.url}/api/verify", data=b"{}",
                             headers={"Content-Type": "text/csv"}) as resp:
        answers.append((resp.status, (await resp.json())["messageString"]["status"]))
    query = run.signed()
    async with run.http.get(f"{run.url}/nowhere", params=query) as resp:
        answers.append((resp.status, (await resp.json())["messageString"]["status"]))
    return answers


async def streaming_session(run: Run, callback_url: str) -> dict[str, Any]:
    """A session with a portrait, an events reader and a webhook, decided; its result
    read by bearer token and by a signed query string."""
    async with run.http.post(f"{run.url}/v1/sessions", data=run.signed(
            challenges="0", img=b64(PORTRAIT), callback_url=callback_url)) as resp:
        assert resp.status == 201
        session = await resp.json()
    run.credentials.add(session["session_token"])
    events = EventStream(session, run.http)
    reader = asyncio.create_task(events.read(60))
    await asyncio.wait_for(events.attached.wait(), 10)
    client = WhipClient(session, run.http)
    assert await client.connect(ClipTrack(decode_all(data_bytes(CLIP)), fps=15)) == 201
    try:
        payload = await asyncio.wait_for(client.result, 60)
    finally:
        await client.hang_up()
    await asyncio.wait_for(reader, 30)
    assert events.kinds[-1] == "result"
    status, _ = await client.poll_result()
    assert status == 200
    async with run.http.get(session["result_url"], params=run.signed()) as resp:
        assert resp.status == 200
    async with run.http.get(session["result_url"], headers={
            "Authorization": "Bearer not-the-token"}) as resp:
        assert resp.status == 401
    async with run.http.get(f"{run.url}/metrics") as resp:
        assert resp.status == 200
    return payload


async def wait_ready(url: str, proc: asyncio.subprocess.Process,
                     http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(180):
        while True:
            assert proc.returncode is None, "the service exited during start-up"
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def test_json_log_of_a_full_run_is_one_object_per_line_and_leaks_nothing(
        http, tmp_path: Path):
    signatures: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        signatures.append(request.headers["X-Signature"])
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
    env.update(SERVICE_LOG_FORMAT="json", SERVICE_API_KEYS=f"{KEY}:{SECRET}",
               SERVICE_MODEL_DIR=str(MODEL_DIR), SERVICE_SESSIONS__OBSERVATION_S="3",
               SERVICE_WEBHOOKS__ALLOWED_HOSTS="127.0.0.1")
    log_path = tmp_path / "service.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", "--port", str(port), cwd=ROOT, env=env,
            stdout=log_file, stderr=log_file)
        try:
            await wait_ready(url, proc, http)
            run = Run(http, url)
            answers = await api_calls(run)
            payload = await streaming_session(
                run, str(receiver.make_url("/hook?tenant=7")))
            async with asyncio.timeout(20):
                while not signatures:
                    await asyncio.sleep(0.05)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            await receiver.close()
    assert [a[1] for a in answers] == [
        "2000", "2000", "2000", "4010", "4011", "4006", "4001", "4002", "2000", "2000",
        "4011", "2000", "4001", "4040"]
    run.credentials.update(signatures)

    lines = log_path.read_text().splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line[:200]}")
        assert isinstance(entry, dict) and {"time", "level", "logger", "message"} <= set(entry)
        for credential in run.credentials:
            assert credential not in line, f"line {number} holds a credential"
        for what, pattern in FORBIDDEN.items():
            assert not pattern.search(line), f"line {number} holds a {what}: {line[:300]}"
        entries.append(entry)

    # the log says what happened, with its ids
    access = [e for e in entries if e["logger"] == "aiohttp.access"]
    assert len(access) >= len(answers) and all(re.fullmatch(r"[0-9a-f]{16}", e["request_id"])
                                               for e in access)
    verify_lines = [e for e in entries if e["message"].startswith("typeId ")]
    assert len(verify_lines) == 6 and all("request_id" in e for e in verify_lines)
    # read from the structured result: a verdict with its reasons, or a comparison
    assert all(("verdict" in e and isinstance(e["reason_codes"], list))
               or e.get("same_person") in ("yes", "no") for e in verify_lines)
    decided = [e for e in entries if e["message"].startswith("session decided")]
    assert len(decided) == 1
    line = decided[0]
    assert line["session_id"] and line["reasons"] == payload["detail"]["reasons"]
    assert len(line["reason_codes"]) == len(line["reasons"])
    assert line["decision_ms"] > 0 and line["frames_analysed"] > 0
    assert any(e["message"].startswith("webhook ") and e.get("session_id") == line[
        "session_id"] for e in entries)
    assert any(e["logger"] == "native" for e in entries)  # MediaPipe's lines, wrapped


async def test_request_ids_are_echoed_or_made(http, base_url):
    async with http.get(f"{base_url}/healthz", headers={"X-Request-Id": "lb-4f1c:77"}) as r:
        assert r.headers["X-Request-Id"] == "lb-4f1c:77"
    for unsafe in ("two words", "x" * 200, "a\tb", ""):
        async with http.get(f"{base_url}/healthz", headers={"X-Request-Id": unsafe}) as r:
            assert re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-Id"])
    async with http.get(f"{base_url}/no/such/path") as r:  # errors carry one too
        assert r.status == 404 and re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-Id"])


def test_a_record_is_one_json_line_with_its_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logs.json")
    logger.addHandler(handler)
    logger.propagate = False
    request_token, session_token = REQUEST_ID.set("req-1"), SESSION_ID.set("sess-1")
    try:
        logger.warning("two\nlines \x1b[31m", extra={"fields": {"reasons": ["a", "b"],
                                                                "level": "spoofed"}})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        REQUEST_ID.reset(request_token)
        SESSION_ID.reset(session_token)
        logger.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    entry = json.loads(first)
    assert entry["message"] == "two\nlines \x1b[31m" and entry["level"] == "WARNING"
    assert (entry["request_id"], entry["session_id"]) == ("req-1", "sess-1")
    assert entry["reasons"] == ["a", "b"]  # fields join the object, never override it
    assert "ValueError: boom" in json.loads(second)["exception"]


def test_log_format_is_checked():
    assert load_config(env={"SERVICE_LOG_FORMAT": "json"}).log_format == "json"
    root = logging.getLogger()
    handlers = list(root.handlers)
    with pytest.raises(ValueError, match="log_format"):
        configure_logging("xml")
    assert root.handlers == handlers
