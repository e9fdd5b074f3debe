"""The HTTP/1.1 connection layer: aiohttp's server with envelope errors, quiet logs, deadlines.

aiohttp answers some requests itself, outside the application and its middleware:
bytes that do not parse as HTTP (RFC 9112 sections 3, 5 and 6.3: 400) and an Expect
header it does not know (RFC 9110 section 10.1.1: 417). Its answers are text/plain,
quote the request (the first 100 bytes of an over-long header, "Unknown Expect: ...")
and are logged with the parser's message, which holds request bytes (a body left over
after `Connection: close`, with its key and token). ServiceRunner serves the app
through ServiceRequestHandler instead, which answers those with the vendor envelope,
logs one line without the request's bytes, and bounds how long a client may take to
send a request and how many connections one address may hold (a slow client cannot
pin the server's sockets). `python -m service` and the tests run this same runner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from aiohttp.web_server import Server

from service.api.envelope import failure
from service.errors import (
    ApiError,
    ExpectationFailed,
    InternalError,
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    RequestTimeout,
    TooLarge,
    UnsupportedMediaType,
)
from service.http.forwarded import is_trusted
from service.ops.metrics import ENVELOPE_STATUS

log = logging.getLogger("service.http")

# aiohttp's own refusals by HTTP status; one it raises that we do not list (403 for a
# static directory, which we do not serve) falls back to 4001.
HTTP_ERRORS: dict[int, type[ApiError]] = {
    cls.http_status: cls for cls in (MalformedRequest, NotFound, MethodNotAllowed,
                                     RequestTimeout, TooLarge, UnsupportedMediaType,
                                     ExpectationFailed, RateLimited)
}


@dataclass(frozen=True)
class HttpSettings:
    # The request line and headers must be complete this many seconds after the
    # connection opened (or after the first byte of a later request); then 408 and
    # close. A real client sends them in one packet; 10 s forgives a lossy mobile link.
    header_timeout_s: float = 10.0
    # The whole body must have arrived this many seconds after the headers; then 408
    # (or just close if an answer has started). 30 s carries the 10 MB spec maximum
    # at 2.8 Mbit/s or more; slower uplinks need a larger value.
    body_timeout_s: float = 30.0
    # An idle keep-alive connection is closed after this long. Above aiohttp's client
    # pool (15 s idle), so a pooled client drops the connection before we do and never
    # sends a request on a socket we are closing.
    keepalive_s: float = 20.0
    # Open connections from one client address; more are answered 4290 and closed at
    # once. Above aiohttp's default client pool (100 connections) so a batch client
    # that gathers requests is not refused; browsers open 6 per host.
    max_connections_per_address: int = 128
    # Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client
    # (service/http/forwarded.py) and whose connections are not capped per address. Empty:
    # no proxy is believed; set it to the proxy's address behind one (deploy/).
    trusted_proxies: tuple[str, ...] = ()


class BodyTimeout(asyncio.TimeoutError):
    """Set on a request's body stream when the body did not arrive in time.

    A TimeoutError because aiohttp (3.14, RequestHandler.start) drains an unread body
    after the response and treats a TimeoutError there as "stop draining", quietly.
    """


# What a client causes: logged as one line, never with a traceback or the exception's
# message (aiohttp's parser errors quote the request bytes). ConnectionError: the client
# hung up (aiohttp runs the handler on after a disconnect: handler_cancellation=False).
CLIENT_ERRORS = (HttpProcessingError, RequestPayloadError, BodyTimeout, ConnectionError)


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(failure(error.status, error.value),
                                 status=error.http_status, headers=headers)
    response[ENVELOPE_STATUS] = error.status  # counted by the metrics middleware
    return response


def closing(response: web.Response) -> web.Response:
    """The response with `Connection: close`: after a malformed or unfinished body the
    next request cannot be found on the connection (RFC 9112 section 6.3), and a 408
    closes it (RFC 9110 section 15.5.9)."""
    response.force_close()
    return response


def http_error_response(exc: web.HTTPException) -> web.Response:
    """The envelope for an aiohttp HTTPException: its status kept, its text (which may
    quote the request) dropped, its Allow header kept (RFC 9110 section 15.5.6)."""
    error = HTTP_ERRORS.get(exc.status, MalformedRequest)()
    allow = exc.headers.get("Allow")
    return error_response(error, {"Allow": allow} if allow is not None else None)


def _address(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) else None


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log of method, path, status and time only: no query string (GET
    .../result?token= carries a bearer token), no headers, no peer; the path
    percent-encoded, so it cannot forge log lines."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %d %.1fms", request.method, request.rel_url.raw_path,
                         response.status, time * 1000)


class ServiceRequestHandler(RequestHandler):
    """aiohttp's HTTP/1.1 protocol with envelope errors, quiet logs and read deadlines.

    One deadline runs at a time (RFC 9112 section 9.5 lets a server close a connection
    it no longer waits on):
    - headers: from the connection opening, or from the first byte after a response,
      until the request is handed to the app; past it, 408 and close;
    - body: from then until the whole body has arrived; past it, the body stream fails
      with BodyTimeout (the app answers 408 and the connection closes);
    - none while the app works on a request; between requests aiohttp's keep-alive
      timer (keepalive_s) closes an idle connection.
    """

    __slots__ = (
        "_address",
        "_body",
        "_busy",
        "_deadline",
        "_deadline_kind",
        "_reading",
        "_server",
        "_settings",
    )

    def __init__(self, manager: ServiceServer, *, settings: HttpSettings, **kwargs: Any
                 ) -> None:
        super().__init__(manager, **kwargs)
        self._server = manager
        self._settings = settings
        self._address: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind: str | None = None
        self._body: StreamReader | None = None
        self._busy = False  # a request is with the app
        self._reading = True  # bytes of a request not yet handed to the app

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._address = address = _address(transport)
        if is_trusted(address, self._settings.trusted_proxies):
            self._address = address = None  # a proxy carries many clients' connections
        if address is not None:
            self._server.per_address[address] += 1
            if self._server.per_address[address] > self._settings.max_connections_per_address:
                self._reply_and_close(RateLimited("too many connections from this address"))
                return
        self._update_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is not None:
            self._server.per_address[self._address] -= 1
            if not self._server.per_address[self._address]:
                del self._server.per_address[self._address]
            self._address = None
        self._set_deadline(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and self._body is None:
            self._reading = True
        queued = len(self._messages)
        super().data_received(data)
        # aiohttp 3.14 queues a parse error as a private _ErrInfo in `_messages`. When it
        # broke a body (bad chunk framing), that body's stream would otherwise never end.
        if len(self._messages) > queued and isinstance(self._messages[-1][0], _ErrInfo):
            body = self._messages[-2][1] if len(self._messages) > 1 else self._body
            if body is not None and not body.is_eof():
                body.set_exception(RequestPayloadError("malformed body framing"))
        self._update_deadline()

    def request_started(self, payload: StreamReader) -> None:
        """The request's headers are complete and aiohttp hands it to the app."""
        self._busy, self._reading = True, False
        self._body = payload
        self._update_deadline()

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        # aiohttp runs the Expect handler before the app's middleware, so its 417 (an
        # HTTPException used as the response) only meets us here.
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            resp = http_error_response(resp)
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._busy = False
            self._update_deadline()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Answer aiohttp's own errors: a request that does not parse (400), and an
        exception that escaped the app (500): a client that hung up mid-body logs one
        line, anything else is a bug and logs its traceback."""
        if status >= 500 and not isinstance(exc, CLIENT_ERRORS):
            self.logger.error("%d on %s %s", status, request.method, request.rel_url.raw_path,
                              exc_info=exc)
        else:
            log.info("%s %d %s", request.remote, status, type(exc).__name__ if exc else "")
        error = InternalError() if status >= 500 else HTTP_ERRORS.get(status, MalformedRequest)()
        if request.writer.output_size > 0:  # as aiohttp: an answer has started, only close
            raise ConnectionError("response already started")
        return closing(error_response(error))

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp logs what goes wrong on a connection (e.g. a body that fails while
        it drains it after the response); for a client's error, one line only."""
        exc = kw.get("exc_info")
        if isinstance(exc, CLIENT_ERRORS):
            log.info("%s %s", self._address, type(exc).__name__)
        else:
            super().log_exception(*args, **kw)

    def _update_deadline(self) -> None:
        if self._body is not None and (self._body.is_eof() or self._body.exception()):
            self._body = None  # complete or failed: nothing left to wait for
        if self._body is not None:
            self._set_deadline("body")
        elif self._busy or not self._reading:
            self._set_deadline(None)
        else:
            self._set_deadline("headers")

    def _set_deadline(self, kind: str | None) -> None:
        if kind == self._deadline_kind:
            return
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._deadline_kind = None, kind
        if kind is not None:
            seconds = (self._settings.body_timeout_s if kind == "body"
                       else self._settings.header_timeout_s)
            self._deadline = self._loop.call_later(seconds, self._deadline_passed)

    def _deadline_passed(self) -> None:
        kind, self._deadline, self._deadline_kind = self._deadline_kind, None, None
        if kind == "body" and self._body is not None:
            self._body.set_exception(BodyTimeout())
            self.close()  # read no more; aiohttp closes once the app has answered
        else:
            self._reply_and_close(RequestTimeout())

    def _reply_and_close(self, error: ApiError) -> None:
        """Answer with the envelope outside aiohttp's request cycle (no request is with
        the app, nothing has been sent) and close."""
        log.info("%s %d %s", self._address, error.http_status, error.value)
        body = json.dumps(failure(error.status, error.value)).encode()
        head = (f"HTTP/1.1 {error.http_status} {HTTPStatus(error.http_status).phrase}\r\n"
                "Content-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        if self.transport is not None:
            self.transport.write(head.encode() + body)
        self.force_close()


class ServiceServer(Server):
    """aiohttp's Server building ServiceRequestHandler, with connections per address."""

    def __init__(self, handler: Any, *, settings: HttpSettings, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.settings = settings
        self.per_address: Counter[str] = Counter()
        self._app_request_factory = self.request_factory
        self.request_factory = self._dispatch

    def _dispatch(self, message: Any, payload: StreamReader, protocol: RequestHandler,
                  writer: Any, task: asyncio.Task[None]) -> web.BaseRequest:
        # aiohttp calls the request factory when it hands a parsed request to the app.
        assert isinstance(protocol, ServiceRequestHandler)
        protocol.request_started(payload)
        return self._app_request_factory(message, payload, protocol, writer, task)

    def __call__(self) -> ServiceRequestHandler:
        # aiohttp 3.14: Server keeps the handler settings in the private `_kwargs`.
        return ServiceRequestHandler(self, settings=self.settings, loop=self._loop,
                                     **self._kwargs)


class ServiceRunner(web.AppRunner):
    """web.AppRunner serving the app through ServiceServer."""

    __slots__ = ("_settings",)

    def __init__(self, app: web.Application, settings: HttpSettings, **kwargs: Any) -> None:
        super().__init__(app, access_log_class=PathOnlyAccessLogger,
                         keepalive_timeout=settings.keepalive_s, **kwargs)
        self._settings = settings

    async def _make_server(self) -> Server:
        # aiohttp 3.14: AppRunner._make_server starts the app and returns a plain Server;
        # ours takes over its app handler, request factory and handler settings.
        server = await super()._make_server()
        return ServiceServer(server.request_handler, settings=self._settings,
                             request_factory=server.request_factory,
                             handler_cancellation=server.handler_cancellation,
                             loop=server._loop, **server._kwargs)


async def serve(app: web.Application, host: str, port: int, settings: HttpSettings,
                drain: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
    """Serve on host:port until SIGINT, or SIGTERM after `drain()` returned (requests
    go on being served while it runs), then clean up (as web.run_app, on our runner)."""
    runner = ServiceRunner(app, settings)
    await runner.setup()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    draining: list[asyncio.Task[None]] = []

    def on_sigterm() -> None:
        if drain is None:
            stop.set()
        elif not draining:
            draining.append(loop.create_task(drain(), name="drain"))
            draining[0].add_done_callback(lambda _: stop.set())

    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("serving on http://%s:%d", host, port)
        await stop.wait()
    finally:
        for task in draining:
            task.cancel()
        await runner.cleanup()
