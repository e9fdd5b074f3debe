"""The HTTP layer over raw sockets: envelope answers to bad HTTP, deadlines, connection cap,
and a log that never holds request bytes (service/http/server.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from conftest import DATA, KEY, SECRET, make_config, start_server

from testing.client import signed_fields

# Small deadlines so stalled connections are closed in about a second. Reads below wait
# at most WAIT_S for the server to close: a bound on the loop, not a speed check.
HEADER_S, BODY_S, KEEPALIVE_S, PER_ADDRESS = 1.0, 1.0, 4.0, 4
WAIT_S = 15.0


@pytest_asyncio.fixture(scope="module")
async def server() -> AsyncIterator:
    srv = await start_server(make_config(http__header_timeout_s=HEADER_S,
                                         http__body_timeout_s=BODY_S,
                                         http__keepalive_s=KEEPALIVE_S,
                                         http__max_connections_per_address=PER_ADDRESS))
    yield srv
    await srv.close()


async def exchange(server, data: bytes = b"", source: str = "127.0.0.1") -> bytes:
    """Send data, then read until the server closes the connection (or resets it)."""
    reader, writer = await asyncio.open_connection(server.host, server.port,
                                                   local_addr=(source, 0))
    writer.write(data)
    received = b""
    try:
        async with asyncio.timeout(WAIT_S):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    return received


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split what came back into (status, headers, body) answers (Content-Length framed)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = int(headers.get("content-length", len(rest)))
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return out


def envelope(raw: bytes) -> tuple[int, str, dict[str, str]]:
    """The single answer on the connection: HTTP status, envelope status, headers."""
    [(status, headers, body)] = responses(raw)
    assert headers["content-type"].startswith("application/json")
    payload = json.loads(body)
    assert payload["infoList"] == [] and set(payload["messageString"]) == {"status", "value"}
    return status, payload["messageString"]["status"], headers


MARK = "Zq7marker"  # in every bad request: must not come back in the answer
BAD_HTTP = {
    "garbage request line": f"{MARK}\r\n\r\n",
    "invalid method": f"G{MARK}@ / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad HTTP version": f"GET /{MARK} HTTP/9.Z\r\nHost: x\r\n\r\n",
    "space in a header name": f"GET / HTTP/1.1\r\nHost: x\r\nX {MARK}: 1\r\n\r\n",
    "header without colon": f"GET / HTTP/1.1\r\nHost: x\r\n{MARK}\r\n\r\n",
    "header too long": f"GET / HTTP/1.1\r\nHost: x\r\nX-A: {MARK}{'A' * 9000}\r\n\r\n",
    "request line too long": f"GET /{MARK}{'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n",
    "too many headers": "GET / HTTP/1.1\r\nHost: x\r\n"
                        + "".join(f"X-{i}: {MARK}\r\n" for i in range(200)) + "\r\n",
    "bad Content-Length": f"POST /api/verify HTTP/1.1\r\nHost: x\r\nContent-Length: {MARK}"
                          "\r\n\r\n",
    "Content-Length and chunked": "POST /api/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 3"
                                  f"\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{MARK}\r\n",
    "bad chunk size": "POST /api/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                      f"\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n{MARK}\r\n",
    "bad chunk after a good one": "POST /api/verify HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
                                  f"3\r\nkey\r\nZZ\r\n{MARK}\r\n0\r\n\r\n",
    "unknown transfer coding": "POST /api/verify HTTP/1.1\r\nHost: x\r\n"
                               f"Transfer-Encoding: {MARK}\r\n\r\n",
}


@pytest.mark.parametrize("case", BAD_HTTP)
async def test_malformed_http_answers_4001_without_echo(server, case):
    raw = await exchange(server, BAD_HTTP[case].encode())
    assert envelope(raw)[:2] == (400, "4001")
    assert MARK.encode() not in raw and b"AAAA" not in raw


async def test_bad_chunk_sent_after_the_headers_answers_4001(server):
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST /api/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n\r\n3\r\nkey\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)  # the app is now reading the body
    writer.write(f"ZZ\r\n{MARK}\r\n".encode())
    async with asyncio.timeout(WAIT_S):
        raw = await reader.read()
    writer.close()
    assert envelope(raw)[:2] == (400, "4001")
    assert MARK.encode() not in raw


@pytest.mark.parametrize("request_, expected", [
    ("GET /nowhere HTTP/1.1", (404, "4040")),
    ("DELETE /api/verify HTTP/1.1", (405, "4050")),
    ("GET /v1/sessions HTTP/1.1", (405, "4050")),
])
async def test_router_refusals_answer_the_envelope(server, request_, expected):
    raw = await exchange(server, f"{request_}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status, code, headers = envelope(raw)
    assert (status, code) == expected
    if status == 405:  # RFC 9110 section 15.5.6: the allowed methods are listed
        assert "POST" in headers["allow"]


async def test_unknown_expectation_answers_4170_without_echo(server):
    raw = await exchange(server, f"POST /api/verify HTTP/1.1\r\nHost: x\r\nExpect: {MARK}\r\n"
                                 "Content-Length: 3\r\nConnection: close\r\n\r\nabc".encode())
    assert envelope(raw)[:2] == (417, "4170")
    assert MARK.encode() not in raw


async def test_expect_100_continue_still_works(server):
    raw = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                 b"Connection: close\r\n\r\n")
    assert b"100 Continue" in raw and b'"ok"' in raw


@pytest.mark.parametrize("sent", [
    b"",  # a connection that never sends anything
    b"POST /api/veri",  # half a request line
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # headers that never end
])
async def test_a_stalled_request_is_answered_4080_and_closed(server, sent):
    raw = await exchange(server, sent)  # returns once the server has closed
    assert envelope(raw)[:2] == (408, "4080")


@pytest.mark.parametrize("path", ["/api/verify", "/v1/sessions", "/nowhere"])
async def test_a_body_stalled_halfway_is_closed(server, path):
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n")
    raw = await exchange(server, head.encode() + b"key=" + b"A" * 400)
    status, code, _ = envelope(raw)
    # The app answers 408 when it was reading the body; /nowhere was answered at once,
    # and then its unread body is given up at the deadline.
    assert (status, code) == ((404, "4040") if path == "/nowhere" else (408, "4080"))


async def test_an_idle_keep_alive_connection_is_closed(server):
    raw = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    [(status, _, body)] = responses(raw)
    assert status == 200 and json.loads(body) == {"status": "ok"}


async def test_keep_alive_serves_several_requests_on_one_connection(server):
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(WAIT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(length)
            await asyncio.sleep(HEADER_S * 1.5)  # idle past the header deadline, not keep-alive
    finally:
        writer.close()


async def test_connections_over_the_per_address_cap_are_refused(server):
    source = "127.0.0.2"  # its own address, so other tests' connections do not count
    opened = [await asyncio.open_connection(server.host, server.port, local_addr=(source, 0))
              for _ in range(PER_ADDRESS)]
    try:
        raw = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", source)
        assert envelope(raw)[:2] == (429, "4290")
    finally:
        for _, writer in opened:
            writer.close()
    # the held connections are gone (closed by us, or by the header deadline): served again
    for _ in range(int(WAIT_S / 0.1)):
        raw = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close"
                                     b"\r\n\r\n", source)
        if raw.startswith(b"HTTP/1.1 200"):
            break
        await asyncio.sleep(0.1)
    assert raw.startswith(b"HTTP/1.1 200")
    # another address was never limited
    assert (await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")).startswith(b"HTTP/1.1 200")


class Captured(logging.Handler):
    """Every record of every logger, formatted with its traceback if it has one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler, root = Captured(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_the_log_holds_no_request_bytes(server, captured):
    """What aiohttp logged before: the leftover body after `Connection: close` (key,
    token, base64 image), the first 100 bytes of over-long lines ("Bearer ...")."""
    secret_b64 = base64.b64encode(secrets.token_bytes(96)).decode()
    bearer = secrets.token_hex(32)
    image = base64.b64encode((DATA / "faces/face_recognition/obama__obama.jpg").read_bytes())
    form = {**signed_fields(KEY, SECRET), "typeId": "21", "img1": secret_b64,
            "img2": image.decode()}
    body = "&".join(f"{k}={v}" for k, v in form.items())
    requests = [
        # a short Content-Length: the rest of the body is left over after Connection: close
        ("POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n"
         f"Content-Type: application/x-www-form-urlencoded\r\n\r\n{body}"),
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}{'0' * 9000}\r\n\r\n",
        f"GET /v1/sessions/x/result?token={bearer}{'0' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nBearer {bearer}: {SECRET}\r\n\r\n",
        ("POST /api/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         f"{len(body):x}\r\n{body}\r\nZZ {secret_b64}\r\n0\r\n\r\n"),
        f"POST /api/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n{body}",
        (f"GET /v1/sessions/x/result?token={bearer} HTTP/1.1\r\nHost: x\r\n"
         f"Authorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"),
    ]
    for request in requests:
        await exchange(server, request.encode())
    log = captured.text
    assert "/v1/sessions/x/result 404" in log  # the access log ran
    for secret in (secret_b64, secret_b64[:20], bearer, bearer[:16], form["token"][:16],
                   SECRET, image[:40].decode(), image[-40:].decode()):
        assert secret not in log
    assert "Traceback" not in log


async def test_a_client_hanging_up_mid_body_logs_one_line(server, captured):
    _, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n\r\nkey=")
    await writer.drain()
    await asyncio.sleep(0.2)  # the app is now reading the body
    writer.close()
    for _ in range(int(WAIT_S / 0.1)):  # until the server has logged the request
        if "POST /v1/sessions" in captured.text:
            break
        await asyncio.sleep(0.1)
    assert "ConnectionResetError" in captured.text and "Traceback" not in captured.text
