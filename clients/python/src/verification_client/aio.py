"""The asynchronous client, on aiohttp (`pip install 'verification-client[aio]'`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal, overload

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

try:
    import aiohttp
except ImportError:  # pragma: no cover - depends on the installation
    aiohttp = None  # type: ignore[assignment]


class AsyncClient:
    """The same calls as Client, as coroutines. Pass your own aiohttp ClientSession
    (`http=`) to share its connection pool; otherwise one is made and `close()` (or
    `async with`) closes it."""

    def __init__(self, base_url: str, key: str, secret: str, *, timeout_s: float = 60.0,
                 http: Any = None) -> None:
        if aiohttp is None:
            raise ImportError("AsyncClient needs aiohttp: pip install 'verification-client[aio]'")
        self._protocol = Protocol(base_url, key, secret)
        self.timeout_s = timeout_s
        self._http = http
        self._own_http = http is None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def _send(self, request: HttpRequest) -> tuple[int, bytes]:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            async with self._http.request(
                    request.method, request.url, data=request.body, headers=request.headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{request.method} {request.url}: {exc!r}") from exc

    async def _call(self, request: HttpRequest) -> Envelope:
        return parse_envelope(*await self._send(request))

    async def verify(self, type_id: int, **media: Media) -> Envelope:
        """Any typeId, media by field name (img1, img2, img, file): the raw envelope."""
        return await self._call(self._protocol.verify(type_id, media))

    async def compare_faces(self, img1: Media, img2: Media) -> FaceComparison:
        """typeId 21: are the main faces of the two images the same person?"""
        return parse_face_comparison(await self.verify(21, img1=img1, img2=img2))

    async def check_liveness(self, media: Media) -> SilentLiveness | VideoLiveness:
        """typeId 3035 with an image or a video (see Client.check_liveness)."""
        return parse_liveness(await self.verify(3035, img=media))

    async def create_session(self, *, portrait: Media | None = None,
                             challenges: int | str | Sequence[str] | None = None,
                             ttl: float | None = None, callback_url: str | None = None
                             ) -> Session:
        """See Client.create_session."""
        return Session.from_json(await self._call(self._protocol.create_session(
            portrait, challenges, ttl, callback_url)))

    @overload
    async def result(self, session: Session, *, wait: Literal[True] = ...,
                     timeout_s: float | None = ...) -> SessionResult: ...

    @overload
    async def result(self, session: Session, *, wait: bool,
                     timeout_s: float | None = ...) -> SessionResult | None: ...

    async def result(self, session: Session, *, wait: bool = True,
                     timeout_s: float | None = None) -> SessionResult | None:
        """See Client.result: polls with backoff until decided."""
        deadline = time.monotonic() + result_wait_s(session, timeout_s, time.time())
        for delay in poll_delays():
            answer = await self._call(self._protocol.result(session))
            if not is_pending(answer):
                return parse_session_result(answer)
            if not wait:
                return None
            if time.monotonic() + delay > deadline:
                raise ResultTimeout(f"session {session.session_id} still pending")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def end_session(self, session: Session) -> None:
        """See Client.end_session."""
        status, body = await self._send(self._protocol.end_session(session))
        if status != 200:
            parse_envelope(status, body)
