"""HTTP side of streaming sessions (spec section 2): create, WHIP, result, CORS.

    POST   /v1/sessions                 create (key/timestamp/token, form or JSON)
    POST   /v1/demo/sessions            create without a secret (config demo_sessions)
    POST   /v1/sessions/{id}/whip       WHIP offer (application/sdp or JSON {sdp,type})
    PATCH  /v1/sessions/{id}/whip       trickle ICE candidates (sdpfrag), RFC 9725
    DELETE /v1/sessions/{id}/whip       hang up (the WHIP resource = the whip_url)
    GET    /v1/sessions/{id}/result     202 while running, 200 with the decision
    GET    /v1/sessions/{id}/events     the session's messages as server-sent events
    OPTIONS on all of them              CORS preflight for browsers
    POST   /v1/replicas/sessions        a creation forwarded by another replica (signed;
                                        only with shared state, SERVICE_REDIS_URL)

With replicas sharing state, a session another replica holds is placed, redirected,
read or relayed by service/rtc/remote.py.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiohttp import web

from service.api.envelope import failure
from service.api.forms import FormSettings, parse_content_type, parse_json_object
from service.api.request import JSON, Authenticate, read_body, read_request, read_text
from service.cluster.shared_state import SessionRecord
from service.errors import (
    MalformedField,
    RateLimited,
    SessionExpired,
    SessionNotFound,
    StateStoreUnavailable,
    UnsupportedMediaType,
)
from service.judging.compare import portrait_embedding
from service.liveness.challenges.sets import parse_challenges
from service.media.uploads import MediaSettings
from service.ops.logs import bind_session
from service.ops.webhooks import WEBHOOKS
from service.rtc import remote
from service.rtc.manager import SessionManager
from service.rtc.peer import IceServer
from service.rtc.sdp import trickle_candidates, validate_offer
from service.rtc.session import Session, SessionSettings, SessionState
from service.vision.faces import FaceSearchSettings
from service.vision.runtime import ModelRuntime, RuntimeSlot

T = TypeVar("T")


class SessionAuth(Authenticate, Protocol):
    """Signed requests and session bearers (service.http.auth.Authenticator)."""

    async def check_bearer(self, client: str, authorization: str | None,
                           check: Callable[[str], Awaitable[T]]) -> T: ...


@dataclass(frozen=True)
class SessionApiSettings:
    """The parts of the root config the session routes read: the sessions' own section,
    how request bodies are read, whether demo sessions are on and which origins may
    call, and how an ID portrait is decoded and its face found (judging.compare.portrait_embedding
    reads `media` and `faces` by the root config's names, which these fields keep). Not
    a section of its own: the composition root (service/app.py) fills it from the root
    config."""

    sessions: SessionSettings
    max_request_bytes: int
    forms: FormSettings
    demo_sessions: bool
    cors_origin: str
    media: MediaSettings
    faces: FaceSearchSettings


@dataclass(frozen=True)
class SessionApi:
    """What the session routes work with, handed over by the composition root
    (service/app.py, as the app's SESSION_API): their settings, the authenticator and
    the models once loaded."""

    config: SessionApiSettings
    auth: SessionAuth
    models: RuntimeSlot

    @property
    def runtime(self) -> ModelRuntime:
        return self.models.runtime


MANAGER = web.AppKey("sessions", SessionManager)
SESSION_API = web.AppKey("session_api", SessionApi)
PORTRAIT_FIELDS = ("img", "file", "portrait")
SDP, SDPFRAG = "application/sdp", "application/trickle-ice-sdpfrag"

# messageString status of a result that is not decided yet (HTTP 202, spec section 2)
PENDING = remote.PENDING


_iso = remote.iso


def _session_json(request: web.Request, session: Session, token: str,
                  ice_servers: tuple[IceServer, ...]) -> dict[str, Any]:
    base = f"{remote.base_url(request, request.app[MANAGER].replica)}/v1/sessions/{session.id}"
    return {
        "session_id": session.id,
        "session_token": token,
        "whip_url": f"{base}/whip",
        "result_url": f"{base}/result",
        "events_url": f"{base}/events",
        "ice_servers": [s.to_json() for s in ice_servers],
        "expires_at": _iso(session.expires_at),
        "ttl_s": round(session.expires_at - session.created_at, 3),
        "challenges": list(session.challenges),
    }


async def _create(request: web.Request, key: str, fields: dict[str, str],
                  portrait: bytes | None, raw: bytes = b"", forwarded: str | None = None
                  ) -> web.Response:
    """Create the session here, or (replicas sharing state, not `forwarded` to us by
    another replica with the slot it reserved here) on the least-loaded replica with
    room (service/rtc/remote.py)."""
    state = request.app[SESSION_API]
    cfg = state.config
    manager = request.app[MANAGER]
    try:
        challenges = parse_challenges(fields.get("challenges"), cfg.sessions.challenges)
    except ValueError as exc:
        raise MalformedField("challenges", "malformed", str(exc)) from None
    try:
        ttl = float(fields.get("ttl") or cfg.sessions.ttl_s)
    except ValueError:
        raise MalformedField("ttl", "malformed") from None
    if not 10.0 <= ttl <= cfg.sessions.max_ttl_s:
        raise MalformedField("ttl", "malformed", f"10..{cfg.sessions.max_ttl_s:g} seconds")
    callback = request.app[WEBHOOKS].accept(fields.get("callback_url"), key)
    await state.models.wait_ready()
    replica = manager.replica
    # forwarded without a slot (a replica of an older version): one of our own, which
    # our heartbeat holds from its next beat
    slot = forwarded or (secrets.token_hex(8) if forwarded is not None else "")
    if replica.clustered and forwarded is None:
        placed = await remote.place(request, replica, key, raw)
        if isinstance(placed, web.Response):
            return placed  # the owner's answer
        slot = placed
    try:
        session, token = await _create_here(request, key, challenges, ttl, portrait, slot)
    except BaseException:
        with contextlib.suppress(StateStoreUnavailable):
            await replica.release(slot)  # the placer releases it too: both idempotent
        raise
    request.app[WEBHOOKS].register(session.id, callback)
    bind_session(session.id)
    return web.json_response(_session_json(request, session, token,
                                           manager.ice_servers_for(session)),
                             status=201)


async def _create_here(request: web.Request, key: str, challenges: list[str], ttl: float,
                       portrait: bytes | None, slot: str) -> tuple[Session, str]:
    """The session on this replica, published to every replica before it is answered
    (read-your-writes: its offer may reach another replica at once). When the store
    cannot take it, 5030 and nothing is left of it: not the session, not the quota."""
    state = request.app[SESSION_API]
    cfg = state.config
    manager = request.app[MANAGER]
    if manager.replica.draining:
        raise RateLimited("busy: this replica is shutting down, retry shortly")
    manager.store.check_capacity()  # refuse before spending a portrait's compute
    ticket = await manager.shared.take_quota(key, time.time(),
                                             cfg.sessions.per_key_per_minute, 60.0)
    if not ticket:
        raise RateLimited("too many sessions for this key, retry later")
    embedding, detail = None, None
    if portrait is not None:
        embedding, detail = await state.runtime.run(portrait_embedding, state.runtime,
                                                    portrait, cfg.media, cfg.faces)
    session, token = manager.store.create(key, challenges, ttl, embedding, detail,
                                          slot=slot)
    try:
        await manager.publish(session)
    except BaseException:
        manager.discard(session)
        with contextlib.suppress(StateStoreUnavailable):
            await manager.shared.return_quota(key, ticket)
        raise
    return session, token


async def create_session(request: web.Request) -> web.Response:
    state = request.app[SESSION_API]
    req = await read_request(request, PORTRAIT_FIELDS, state.config.max_request_bytes,
                             state.config.forms, allow_json=True,
                             keep_raw=request.app[MANAGER].replica.clustered)
    key, timestamp, token = (req.text(n) for n in ("key", "timestamp", "token"))
    await state.auth.verify(request.remote or "-", key, timestamp, token, req.body_digest)
    portrait = next((req.media[n] for n in PORTRAIT_FIELDS if n in req.media), None)
    return await _create(request, key, req.fields, portrait, req.raw)


async def create_forwarded(request: web.Request) -> web.Response:
    """A session creation another replica placed here (service/rtc/remote.py): signed
    with replicas.secret for the API key it authenticated; the body is the client's."""
    state = request.app[SESSION_API]
    replica = request.app[MANAGER].replica
    req = await read_request(request, PORTRAIT_FIELDS, state.config.max_request_bytes,
                             state.config.forms, allow_json=True, keep_raw=True)
    key, slot = await replica.check_call(request.headers, req.raw)
    portrait = next((req.media[n] for n in PORTRAIT_FIELDS if n in req.media), None)
    return await _create(request, key, req.fields, portrait, forwarded=slot)


async def create_demo_session(request: web.Request) -> web.Response:
    state = request.app[SESSION_API]
    if not state.config.demo_sessions:
        raise SessionNotFound("demo sessions are disabled (config demo_sessions)")
    req = await read_request(request, PORTRAIT_FIELDS, state.config.max_request_bytes,
                             state.config.forms, allow_json=True,
                             keep_raw=request.app[MANAGER].replica.clustered)
    portrait = next((req.media[n] for n in PORTRAIT_FIELDS if n in req.media), None)
    # all demo sessions share one attempt budget, like one API key
    return await _create(request, "demo", req.fields, portrait, req.raw)


async def _session(request: web.Request, allow_expired: bool = False
                   ) -> Session | SessionRecord:
    """The session the bearer token opens (spec section 2), through the one bearer
    check: lockout first, a wrong token counted as a failed attempt. A session another
    replica holds is its directory record (service/rtc/remote.py)."""
    state = request.app[SESSION_API]
    manager = request.app[MANAGER]
    session_id = request.match_info["session_id"]

    async def check(token: str) -> Session | SessionRecord:
        try:
            return manager.store.get(session_id, token, allow_expired=allow_expired)
        except SessionNotFound:
            if manager.directory is None:
                raise
            record = await manager.directory.find(session_id, token)
            if record is None:
                raise
            return record

    found = await state.auth.check_bearer(
        request.remote or "-", request.headers.get("Authorization"), check)
    bind_session(session_id)  # this request's log lines name the session
    return found


async def _redirect(request: web.Request, record: SessionRecord) -> web.Response:
    """A WHIP request for another replica's session: 307 to its owner."""
    manager = request.app[MANAGER]
    assert manager.directory is not None
    await remote.check_owner(record, manager.replica, manager.directory)
    return remote.redirect(record, request)


def _mime(request: web.Request, accepted: tuple[str, ...]) -> str:
    ctype = parse_content_type(request.headers.get("Content-Type"))
    if ctype is None or ctype.mime not in accepted:
        raise UnsupportedMediaType(f"send {' or '.join(accepted)}")
    return ctype.mime


def _offer_from_json(body: bytes, max_fields: int) -> str:
    """The JSON form of a WHIP offer: {"sdp": "...", "type": "offer"}."""
    offer = parse_json_object(body, max_fields)
    if not isinstance(offer.get("sdp"), str):
        raise MalformedField("sdp", "malformed", "expected a string")
    if offer.get("type") != "offer":
        raise MalformedField("type", "malformed", 'expected "offer"')
    return offer["sdp"]


async def whip_offer(request: web.Request) -> web.Response:
    cfg = request.app[SESSION_API].config
    session = await _session(request)
    if isinstance(session, SessionRecord):
        return await _redirect(request, session)
    mime = _mime(request, (SDP, JSON))
    body = await read_body(request, cfg.sessions.sdp.max_bytes)
    sdp = _offer_from_json(body, cfg.forms.max_fields) if mime == JSON else read_text(body)
    validate_offer(sdp, cfg.sessions.sdp.max_media, cfg.sessions.sdp.max_candidates)
    answer = await request.app[MANAGER].connect(session, sdp)
    base = remote.base_url(request, request.app[MANAGER].replica)
    headers = {"Location": f"{base}{request.rel_url.path}",  # absolute (spec 2.1)
               "ETag": f'"{session.id}"'}
    if mime == JSON:
        return web.json_response({"sdp": answer, "type": "answer"}, status=201,
                                 headers=headers)
    return web.Response(status=201, body=answer.encode(), content_type=SDP,
                        headers=headers)


async def whip_patch(request: web.Request) -> web.Response:
    cfg = request.app[SESSION_API].config
    session = await _session(request)
    if isinstance(session, SessionRecord):
        return await _redirect(request, session)
    _mime(request, (SDPFRAG,))
    body = await read_body(request, cfg.sessions.sdp.max_bytes)
    candidates = trickle_candidates(read_text(body), cfg.sessions.sdp.max_candidates)
    await request.app[MANAGER].add_candidates(session, candidates)
    return web.Response(status=204)


async def whip_delete(request: web.Request) -> web.Response:
    session = await _session(request)
    if isinstance(session, SessionRecord):
        return await _redirect(request, session)
    await request.app[MANAGER].end(session)
    return web.Response(status=200)


async def result(request: web.Request) -> web.Response:
    state = request.app[SESSION_API]
    manager = request.app[MANAGER]
    session: Session | SessionRecord | None
    if "Authorization" in request.headers:
        session = await _session(request, allow_expired=True)
    else:
        q = request.query
        key = q.get("key", "")
        for name in ("key", "timestamp", "token"):
            if not q.get(name, "").strip():
                raise MalformedField(name)
        # a read-only poll may repeat its signature, so no replay fingerprint here
        await state.auth.verify(request.remote or "-", key, q["timestamp"], q["token"],
                                secrets.token_hex(8))
        session_id = request.match_info["session_id"]
        session = manager.store.sessions.get(session_id)
        if session is None and manager.directory is not None:
            session = await manager.directory.find(session_id, None)
        if session is None or session.key != key:
            raise SessionNotFound()
    if isinstance(session, SessionRecord):
        assert manager.directory is not None
        return await remote.result(session, manager.replica, manager.directory)
    if session.result is not None:
        return web.json_response(session.result)
    detail = {"state": session.state.value, "expires_at": _iso(session.expires_at)}
    if session.state in (SessionState.EXPIRED, SessionState.ENDED):
        gone = failure(SessionExpired.status,
                       f"the session {session.state.value} without a decision", detail)
        return web.json_response(gone, status=SessionExpired.http_status)
    return web.json_response(failure(PENDING, "pending", detail), status=202)


async def events(request: web.Request) -> web.StreamResponse:
    """The session's messages as server-sent events (spec 2.1): the JSON the data
    channel carries, one `data:` line each, from the messages already sent (bounded
    backlog) to the `result`, then the stream ends. While it is attached, prompts count
    as delivered: this is how a push-only WHIP client is paired with a screen.

    The HTTP layer's header and body deadlines do not run while a handler works on a
    request (service/http/server.py), so a stream lasts as long as its session; it
    ends when the session ends, at shutdown, or when the reader falls behind."""
    session = await _session(request)
    limits = request.app[SESSION_API].config.sessions.events
    if isinstance(session, SessionRecord):
        manager = request.app[MANAGER]
        assert manager.directory is not None
        return await remote.relay_events(request, session, manager.replica,
                                         manager.directory, limits.heartbeat_s)
    subscriber = session.outbox.subscribe()
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})  # proxies (nginx) must not buffer the stream
    try:
        await response.prepare(request)
        while (text := await subscriber.next(limits.heartbeat_s)) is not None:
            # a comment line (":") keeps the connection alive and finds a reader that
            # went away (the write fails)
            await response.write(f"data: {text}\n\n".encode() if text else b":\n\n")
        await response.write_eof()
    except ConnectionResetError:
        pass  # the reader went away: the stream is over, there is no one to answer
    finally:
        session.outbox.unsubscribe(subscriber)
    return response


def _cors(request: web.Request) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": request.app[SESSION_API].config.cors_origin,
        "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
        "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post, X-Request-Id",
        "Access-Control-Max-Age": "600",
    }


async def preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={**_cors(request),
                                             "Accept-Post": "application/sdp"})


async def add_cors(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/v1/"):
        for name, value in _cors(request).items():
            response.headers.setdefault(name, value)


def add_session_routes(app: web.Application, manager: SessionManager, api: SessionApi
                       ) -> None:
    app[MANAGER] = manager
    app[SESSION_API] = api
    r = app.router
    r.add_post("/v1/sessions", create_session)
    r.add_post("/v1/demo/sessions", create_demo_session)
    r.add_post("/v1/sessions/{session_id}/whip", whip_offer)
    r.add_patch("/v1/sessions/{session_id}/whip", whip_patch)
    r.add_delete("/v1/sessions/{session_id}/whip", whip_delete)
    r.add_get("/v1/sessions/{session_id}/result", result)
    r.add_get("/v1/sessions/{session_id}/events", events)
    if manager.replica.clustered:  # replica-to-replica only: not there when alone
        r.add_post(remote.FORWARD_PATH, create_forwarded)
    for path in ("/v1/sessions", "/v1/demo/sessions", "/v1/sessions/{session_id}/whip",
                 "/v1/sessions/{session_id}/result", "/v1/sessions/{session_id}/events"):
        r.add_route("OPTIONS", path, preflight)
    app.on_response_prepare.append(add_cors)
    app.on_shutdown.append(_end_event_streams)


async def _end_event_streams(app: web.Application) -> None:
    app[MANAGER].end_event_streams()
