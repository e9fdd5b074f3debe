"""The synchronous client: the standard library's urllib, nothing to install."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Literal, overload

from .errors import ResultTimeout, TransportError
from .protocol import (
    HttpRequest,
    Media,
    Protocol,
    Session,
    parse_envelope,
    is_pending,
    poll_delays,
    result_wait_s,
)
from .results import (
    Envelope,
    FaceComparison,
    SessionResult,
    SilentLiveness,
    VideoLiveness,
    parse_face_comparison,
    parse_liveness,
    parse_session_result,
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A signed call is never re-sent elsewhere by the HTTP library on its own."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Client:
    """Calls of one API key. Thread-safe: it holds no connection state.

    `timeout_s` bounds each HTTP call (a 30 s video takes a few seconds to judge on a
    busy service; the default leaves room)."""

    def __init__(self, base_url: str, key: str, secret: str, *, timeout_s: float = 60.0
                 ) -> None:
        self._protocol = Protocol(base_url, key, secret)
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _send(self, request: HttpRequest) -> tuple[int, bytes]:
        req = urllib.request.Request(request.url, data=request.body, method=request.method,
                                     headers=request.headers)
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:  # a non-2xx answer: still an envelope
            with exc:
                return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"{request.method} {request.url}: {exc}") from exc

    def _call(self, request: HttpRequest) -> Envelope:
        return parse_envelope(*self._send(request))

    def verify(self, type_id: int, **media: Media) -> Envelope:
        """Any typeId, media by field name (img1, img2, img, file): the raw envelope."""
        return self._call(self._protocol.verify(type_id, media))

    def compare_faces(self, img1: Media, img2: Media) -> FaceComparison:
        """typeId 21: are the main faces of the two images the same person?"""
        return parse_face_comparison(self.verify(21, img1=img1, img2=img2))

    def check_liveness(self, media: Media) -> SilentLiveness | VideoLiveness:
        """typeId 3035: an image (silent liveness) or a video (video liveness); the
        service tells them by their bytes, and the answer's type says which it saw."""
        return parse_liveness(self.verify(3035, img=media))

    def create_session(self, *, portrait: Media | None = None,
                       challenges: int | str | Sequence[str] | None = None,
                       ttl: float | None = None, callback_url: str | None = None) -> Session:
        """A streaming session: an optional ID portrait to compare with, the challenge
        count or actions (default: the service's 3 random ones), its TTL in seconds
        (10-600, default 120), and the webhook URL that receives its result."""
        return Session.from_json(self._call(self._protocol.create_session(
            portrait, challenges, ttl, callback_url)))

    @overload
    def result(self, session: Session, *, wait: Literal[True] = ...,
               timeout_s: float | None = ...) -> SessionResult: ...

    @overload
    def result(self, session: Session, *, wait: bool,
               timeout_s: float | None = ...) -> SessionResult | None: ...

    def result(self, session: Session, *, wait: bool = True,
               timeout_s: float | None = None) -> SessionResult | None:
        """The session's decision. With `wait`, polls with backoff until it is decided
        (by default until its expiry plus a margin; ResultTimeout after that); without,
        None while it is pending. SessionExpiredError: it ended without a decision."""
        deadline = time.monotonic() + result_wait_s(session, timeout_s, time.time())
        for delay in poll_delays():
            answer = self._call(self._protocol.result(session))
            if not is_pending(answer):
                return parse_session_result(answer)
            if not wait:
                return None
            if time.monotonic() + delay > deadline:
                raise ResultTimeout(f"session {session.session_id} still pending")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def end_session(self, session: Session) -> None:
        """Hang the session up: it is decided with the video it has (a session that got
        none ends without a decision)."""
        status, body = self._send(self._protocol.end_session(session))
        if status != 200:
            parse_envelope(status, body)  # raises the refusal's ApiError
