"""Sessions held by another replica: placement, forwarding, redirects, remote reads.

A session lives on one replica, its owner: the one holding its peer connection and,
in memory only, its portrait embedding. With shared state (Redis):

- `POST /v1/sessions` on any replica places the session on the least-loaded live
  replica with room, reserving a slot there at once (service/cluster/replica.py); when that
  is another one, the creation is forwarded to it
  (a signed replica call carrying the original body, so the portrait is decoded and
  embedded on the owner alone) and the owner's answer, with its absolute URLs, is
  returned. Every replica full: 4290 "busy".
- WHIP requests reaching another replica answer 307 to the owner (RFC 9725 section
  4.5); the `Location` of a WHIP resource is always the owner's absolute URL.
- `GET result` is answered from the session directory; the events stream is relayed
  from the owner's (the owner keeps the stream's delivery accounting, backlog and
  bounds, spec 2.1).
- An owner whose heartbeat expired lost its sessions: 410, status 4101.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import aiohttp
from aiohttp import web

from service.api.envelope import failure
from service.cluster.replica import Replica
from service.cluster.shared_state import LOST, SessionRecord
from service.errors import RateLimited, SessionExpired, SessionLost, StateStoreUnavailable
from service.rtc.directory import Directory
from service.rtc.session import SessionState

log = logging.getLogger("service.rtc")

# Path of the replica-to-replica session creation (signed with replicas.secret).
FORWARD_PATH = "/v1/replicas/sessions"
PENDING = "2020"  # messageString status of a result not decided yet (HTTP 202)


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def base_url(request: web.Request, replica: Replica) -> str:
    """This replica's absolute base URL for the URLs it hands out: its public URL when
    replicas share state (other replicas and clients must reach exactly it), the
    request's own origin when it runs alone."""
    return replica.url if replica.clustered else str(request.url.origin())


async def place(request: web.Request, replica: Replica, key: str, body: bytes
                ) -> web.Response | str:
    """Where a new session goes: the slot reserved for it here (create it here), or
    the answer of the replica it was placed on and forwarded to. A replica that
    refuses (busy since: draining, its model pool full) or cannot be reached gives its
    slot back and the next one with room is tried. RateLimited "busy" when no live
    replica has a free slot; when some had one but refused, the last refusal."""
    tried: set[str] = set()
    refusal: web.Response | None = None
    while (reserved := await replica.reserve(frozenset(tried))) is not None:
        target, slot = reserved
        if target.id == replica.id:
            return slot
        tried.add(target.id)
        answer = await _forward(request, replica, target.url, key, body, slot)
        if answer is not None and answer.status == 201:
            return answer
        try:
            await replica.release(slot, target.id)
        except StateStoreUnavailable:
            pass  # it lapses with its reservation
        if answer is not None and not _busy(answer):
            return answer  # the client's own error (a bad portrait, its quota)
        refusal = answer or refusal
    if refusal is not None:
        return refusal
    raise RateLimited("busy: every replica is at capacity, retry shortly")


async def _forward(request: web.Request, replica: Replica, url: str, key: str, body: bytes,
                   slot: str) -> web.Response | None:
    """The owner's answer, or None when it is unreachable."""
    headers = {**replica.signed_headers(key, body, slot),
               "Content-Type": request.headers.get("Content-Type", "")}
    try:
        async with replica.http().post(f"{url}{FORWARD_PATH}", data=body,
                                       headers=headers, allow_redirects=False) as resp:
            payload = await resp.read()
            status, ctype = resp.status, resp.content_type
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("replica %s unreachable for a new session: %s", url,
                    type(exc).__name__)
        return None
    return web.Response(status=status, body=payload, content_type=ctype)


def _busy(answer: web.Response) -> bool:
    """A 4290 "busy" (no room now), not the key's quota (the same on every replica)."""
    if answer.status != RateLimited.http_status or not isinstance(answer.body, bytes):
        return False
    try:
        return str(json.loads(answer.body)["messageString"]["value"]).startswith("busy")
    except (ValueError, KeyError, TypeError):
        return False


def redirect(record: SessionRecord, request: web.Request) -> web.Response:
    """307 to the same WHIP resource on the session's owner (RFC 9725 section 4.5)."""
    return web.Response(status=307, headers={
        "Location": f"{record.owner_url}{request.rel_url.path}"})


async def check_owner(record: SessionRecord, replica: Replica, directory: Directory) -> None:
    """SessionLost when the record's owner is gone while the session was running."""
    if record.state == LOST:
        raise SessionLost()
    running = record.state in {s.value for s in (SessionState.CREATED, SessionState.CONNECTED,
                                                 SessionState.DECIDING)}
    if running and not await replica.alive(record.owner_id, record.owner_url):
        await directory.mark_lost(record)
        raise SessionLost()


async def result(record: SessionRecord, replica: Replica, directory: Directory
                 ) -> web.Response:
    """GET result of another replica's session, from the directory."""
    if record.result is not None:
        return web.json_response(record.result)
    await check_owner(record, replica, directory)
    detail = {"state": record.state, "expires_at": iso(record.expires_at)}
    if record.state in (SessionState.EXPIRED, SessionState.ENDED):
        gone = failure(SessionExpired.status,
                       f"the session {record.state} without a decision", detail)
        return web.json_response(gone, status=SessionExpired.http_status)
    return web.json_response(failure(PENDING, "pending", detail), status=202)


async def relay_events(request: web.Request, record: SessionRecord, replica: Replica,
                       directory: Directory, heartbeat_s: float) -> web.StreamResponse:
    """The owner's events stream of the session, passed through line by line. The
    owner sends a comment line every `heartbeat_s`, so an owner that vanished without
    closing the connection is noticed after three silent heartbeats."""
    await check_owner(record, replica, directory)
    url = f"{record.owner_url}{request.rel_url.path}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=replica.forward_timeout_s,
                                    sock_read=3 * heartbeat_s)
    headers = {"Authorization": request.headers.get("Authorization", ""),
               "Accept": "text/event-stream"}
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    try:
        async with replica.http().get(url, headers=headers, timeout=timeout,
                                      allow_redirects=False) as upstream:
            if upstream.status != 200:
                return web.Response(status=upstream.status, body=await upstream.read(),
                                    content_type=upstream.content_type)
            await response.prepare(request)
            async for line in upstream.content:
                await response.write(line)
        await response.write_eof()
    except (aiohttp.ClientError, TimeoutError):
        if not response.prepared:
            raise SessionLost() from None  # the owner went away
        log.info("events relay from %s ended early", record.owner_url)
    except ConnectionResetError:
        pass  # the reader went away
    return response
