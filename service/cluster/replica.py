"""This process as one replica of several: identity, heartbeats, placement, draining.

Each replica announces itself in the shared state every `heartbeat_interval_s` (its
random id, its public URL, its capacity, whether it drains), so any replica knows the
live ones and can tell whether a session's owner is still there. A replica whose
heartbeat expired is dead: its running sessions are lost (spec 2.1: 410, status 4101).
With the in-memory default there is one replica, this one, and nothing is announced.

Placement does not read the load from heartbeats: they are up to an interval old, so
every creation of a burst saw the same idle picture (15 of 16 sessions landed on one
replica), and a session that ended a moment ago still counted (an idle replica looked
full). Instead each session holds a *slot* of its owner in the shared state: the
placing replica reserves it in one atomic step that picks the least-loaded replica
(`SharedState.reserve_slot`), so the next creation already sees it; the owner gives it
back as soon as the session ends (before its result goes out), and its heartbeat holds
the slots of the sessions it still has (re-taking them after a Redis restart), so a
reservation never claimed (its placer died) or a release that could not be written
lapses within `heartbeat_ttl_s`.

Replica-to-replica calls (a session creation forwarded to its owner) carry an HMAC of
the shared `replicas.secret` over a timestamp, the API key the receiving replica
authenticated and the body, checked like a vendor token: a short window and the shared
replay cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from service.cluster.shared_state import ReplicaInfo, SharedState
from service.errors import BadCredentials, StaleTimestamp, StateStoreUnavailable

log = logging.getLogger("service.cluster.replica")

# Headers of a replica-to-replica call.
TIME, KEY, SIGNATURE = "X-Replica-Time", "X-Replica-Key", "X-Replica-Signature"
SLOT = "X-Replica-Slot"  # the placement slot reserved for the session on the receiver
# A replica call's timestamp may differ from our clock this much (replicas run NTP).
CALL_WINDOW_S = 30.0


def default_public_url(host: str, port: int) -> str:
    """http://host:port, with this machine's name when bound to every address."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{host}:{port}"


def sign_call(secret: str, timestamp: str, key: str, body: bytes, slot: str = "") -> str:
    message = f"{timestamp}\n{key}\n{hashlib.sha256(body).hexdigest()}\n{slot}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass
class Replica:
    shared: SharedState
    url: str
    capacity: int
    secret: str
    heartbeat_interval_s: float
    heartbeat_ttl_s: float
    forward_timeout_s: float
    active_count: Callable[[], int]  # this replica's active sessions now
    # the placement slots of this replica's active sessions
    active_slots: Callable[[], list[str]] = list
    id: str = ""
    draining: bool = False

    def __post_init__(self) -> None:
        self.id = self.id or secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.on_store_lost: Callable[[], None] = lambda: None
        # our slot writes one at a time, so a heartbeat's hold never lands after the
        # release of a session that ended meanwhile (and re-takes its slot)
        self._slots_lock = asyncio.Lock()
        self._unreleased: set[str] = set()  # released while the store was unreachable

    @property
    def clustered(self) -> bool:
        """Other replicas may share the state (Redis): place, forward, redirect."""
        return self.shared.shared

    def info(self) -> ReplicaInfo:
        return ReplicaInfo(id=self.id, url=self.url, active=self.active_count(),
                           capacity=self.capacity, draining=self.draining)

    # --- heartbeats ---------------------------------------------------------------

    def start(self) -> None:
        if self.clustered and self._task is None:
            self._task = asyncio.create_task(self._beat_forever(), name="replica-heartbeat")

    def nudge(self) -> None:
        """Announce the load now (a session started or ended), not at the next beat."""
        self._wake.set()

    async def _beat_forever(self) -> None:
        beaten, reported = False, False
        while True:
            self._wake.clear()
            try:
                kept = await self.shared.heartbeat(self.info(), self.heartbeat_ttl_s)
                await self._hold_slots()
                if beaten and not kept:
                    # the store lost our announcement (restarted empty, or we could not
                    # reach it for a TTL): what we published must be published again
                    log.warning("shared state lost this replica's records; republishing")
                    self.on_store_lost()
                beaten, reported = True, False
            except StateStoreUnavailable:
                if not reported:
                    log.warning("state store unavailable; heartbeats resume when it is back")
                    reported = True
            except Exception:
                log.exception("heartbeat failed")
            try:  # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel
                # that lands as the event is set (a drain's nudge), and this loop then
                # never ends (the launcher's SIGTERM test hung on a loaded machine)
                async with asyncio.timeout(self.heartbeat_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # --- placement and liveness -----------------------------------------------------

    @property
    def reservation_s(self) -> float:
        """How long a reserved slot waits for its session: a forwarded creation's
        whole time, plus a store round trip."""
        return self.forward_timeout_s + 2.0

    async def reserve(self, exclude: frozenset[str] = frozenset()
                      ) -> tuple[ReplicaInfo, str] | None:
        """A slot on the least-loaded live replica with room (this one first among
        equals: no forwarding hop), taken at once where every replica sees it; None
        when every replica (but `exclude`d ids) is full."""
        me = self.info()
        others = sorted((r for r in await self.shared.replicas()
                         if r.url != self.url and r.id not in exclude), key=lambda r: r.id)
        candidates = ([] if me.id in exclude else [me]) + others
        slot = secrets.token_hex(8)
        target = await self.shared.reserve_slot(candidates, me.id, slot, self.reservation_s)
        return (target, slot) if target is not None else None

    async def release(self, slot: str, owner_id: str = "") -> None:
        """Give a slot back: ours (a session ended, or its creation failed) or one we
        reserved on `owner_id` for a creation it did not take. Ours is retried by the
        heartbeat while the store is unreachable; another's lapses by itself."""
        if not slot:
            return
        if owner_id and owner_id != self.id:
            await self.shared.release_slots(owner_id, [slot])
            return
        async with self._slots_lock:
            self._unreleased.add(slot)
            await self.shared.release_slots(self.id, sorted(self._unreleased))
            self._unreleased.clear()

    async def _hold_slots(self) -> None:
        """The heartbeat's correction: our active sessions' slots held for one more
        TTL (taken again if the store lost them), failed releases retried."""
        async with self._slots_lock:
            held = [s for s in self.active_slots() if s]
            self._unreleased.difference_update(held)
            if self._unreleased:
                await self.shared.release_slots(self.id, sorted(self._unreleased))
                self._unreleased.clear()
            await self.shared.hold_slots(self.id, held, self.heartbeat_ttl_s)

    async def alive(self, replica_id: str, url: str) -> bool:
        """Whether the replica `replica_id` still answers for `url` (a restarted one
        at the same URL has another id and lost the sessions of its predecessor)."""
        if replica_id == self.id:
            return True
        info = await self.shared.replica(url)
        return info is not None and info.id == replica_id

    # --- replica-to-replica calls ---------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.forward_timeout_s))
        return self._http

    def signed_headers(self, key: str, body: bytes, slot: str = "") -> dict[str, str]:
        timestamp = f"{time.time():.3f}"
        return {TIME: timestamp, KEY: key, SLOT: slot,
                SIGNATURE: sign_call(self.secret, timestamp, key, body, slot)}

    async def check_call(self, headers: Mapping[str, str], body: bytes,
                         now: float | None = None) -> tuple[str, str]:
        """The API key a replica call acts for and the slot reserved for it;
        BadCredentials unless it is signed with our secret, fresh and not seen before."""
        now = time.time() if now is None else now
        timestamp, key = headers.get(TIME, ""), headers.get(KEY, "")
        signature, slot = headers.get(SIGNATURE, ""), headers.get(SLOT, "")
        if not self.secret or not timestamp or not key:
            raise BadCredentials("not a replica call")
        good = hmac.compare_digest(sign_call(self.secret, timestamp, key, body, slot).encode(),
                                   signature.encode("utf-8", "replace"))
        if not good:
            raise BadCredentials("bad replica signature")
        try:
            sent = float(timestamp)
        except ValueError:
            raise BadCredentials("bad replica signature") from None
        if abs(now - sent) > CALL_WINDOW_S:
            raise StaleTimestamp("replica call outside its time window")
        if not await self.shared.add_fingerprint(f"replica-call:{signature}",
                                                 sent + CALL_WINDOW_S, now):
            raise StaleTimestamp("replayed replica call")
        return key, slot

    # --- shutdown ---------------------------------------------------------------------

    async def drain(self, grace_s: float, flush: Callable[[], Awaitable[None]]) -> None:
        """SIGTERM: take no new sessions (and say so: /readyz 503, the heartbeat),
        let the running ones finish for up to `grace_s`, publish their results."""
        self.draining = True
        self.nudge()
        log.info("draining: %d sessions running, waiting up to %.0f s",
                 self.active_count(), grace_s)
        deadline = time.monotonic() + grace_s
        while self.active_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        try:
            await asyncio.wait_for(flush(), self.heartbeat_ttl_s)
        except (StateStoreUnavailable, TimeoutError):
            log.warning("results not published before exit: state store unavailable")
        log.info("drained: %d sessions still running", self.active_count())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.clustered:
            try:
                await self.shared.leave(self.info())
            except StateStoreUnavailable:
                pass
        if self._http is not None:
            await self._http.close()
