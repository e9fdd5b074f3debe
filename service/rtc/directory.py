"""The session directory: where each session lives and how it ended, for every replica.

The owner writes a record when a session is created and at each change of its state
(the decision payload once decided); any replica reads it to redirect a WHIP request
to the owner, answer a result poll, or find the owner gone (session lost).

Read-your-writes: what a client can act on is written before the client hears of it.
The record of a new session is stored before its `201` (`publish`; else the creation
fails with 5030: a load balancer may send the offer to any replica at once), and a
final state (decided, ended, expired) before the `result` message, the events-stream
message, the webhook or the DELETE's answer go out. Only changes no client can tell
apart (created -> connected -> deciding: all "pending") go out from one task in
batches, off the request path; those writes are retried while the store is
unreachable, and so is a final state that could not be published at once (a decision
made while Redis was down is published when it is back).
Only ids, the API key, the token's digest, the state and the decision payload are
written: never the portrait embedding, frames or the best frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from service.cluster.shared_state import LOST, SessionRecord, SharedState
from service.errors import BadCredentials, StateStoreUnavailable
from service.rtc.session import Session, SessionState

log = logging.getLogger("service.rtc")

# While the store is unreachable, pending writes are retried this often.
RETRY_S = 1.0


class Directory:
    def __init__(self, shared: SharedState, owner_id: str, owner_url: str,
                 result_retention_s: float, sessions: Callable[[], list[Session]]) -> None:
        self.shared = shared
        self.owner_id = owner_id
        self.owner_url = owner_url
        self.retention_s = result_retention_s
        self.sessions = sessions  # this replica's sessions (to republish them all)
        self._pending: dict[str, Session] = {}
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()  # one write at a time: flush() waits for the last
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._write_forever(), name="session-directory")

    def changed(self, session: Session) -> None:
        """A session of ours was created or changed state: publish it soon."""
        self._pending[session.id] = session
        self._wake.set()

    def republish(self) -> None:
        """The store lost our records (it restarted empty): publish them all again."""
        for session in self.sessions():
            self._pending[session.id] = session
        self._wake.set()

    def record(self, session: Session) -> SessionRecord:
        # a result is published before the session advances to "decided" (the message
        # announcing it goes out in between): for every other replica it is decided
        state = SessionState.DECIDED if session.result is not None else session.state
        return SessionRecord(
            id=session.id, owner_id=self.owner_id, owner_url=self.owner_url,
            key=session.key, token_sha256=session.token_digest.hex(),
            state=state.value, expires_at=session.expires_at, result=session.result)

    def _keep_s(self, session: Session, now: float) -> float:
        """As long as the owner keeps the session: its TTL, then the result retention."""
        return max(session.expires_at, session.decided_at or now) + self.retention_s - now

    async def publish(self, session: Session) -> None:
        """Store the session's record now, after a write in progress (so an older batch
        never lands after it). StateStoreUnavailable leaves it to the writer task."""
        async with self._writing:
            self._pending.pop(session.id, None)
            try:
                await self.shared.put_sessions([(self.record(session),
                                                 max(self._keep_s(session, time.time()),
                                                     1.0))])
            except BaseException:
                self._pending.setdefault(session.id, session)
                self._wake.set()
                raise

    def drop(self, session: Session) -> None:
        """A creation that failed: its record is not to be written (see `flush`)."""
        self._pending.pop(session.id, None)

    async def flush(self) -> None:
        """Write what is pending (after a write in progress); on failure it stays
        pending (StateStoreUnavailable)."""
        async with self._writing:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            now = time.time()
            held = {s.id for s in self.sessions()}  # not a creation that failed since
            try:
                await self.shared.put_sessions([(self.record(s), self._keep_s(s, now))
                                                for s in batch.values()
                                                if s.id in held and self._keep_s(s, now) > 0])
            except BaseException:
                self._pending = {**batch, **self._pending}  # newer changes win
                raise

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StateStoreUnavailable:
                await asyncio.sleep(RETRY_S)
                self._wake.set()
            except Exception:
                log.exception("session directory write failed")
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def close(self, timeout_s: float) -> None:
        """Publish what is pending (a decision just made), then stop writing."""
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except (StateStoreUnavailable, TimeoutError):
            log.warning("session directory: %d changes not published", len(self._pending))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- reading other replicas' sessions ---------------------------------------------

    async def find(self, session_id: str, token: str | None) -> SessionRecord | None:
        """Another replica's session (None when unknown here and there); BadCredentials
        when `token` is given and is not the session's."""
        record = await self.shared.get_session(session_id)
        if record is None or record.owner_id == self.owner_id:
            return None  # ours, and forgotten: unknown
        if token is not None:
            digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
            if not hmac.compare_digest(digest, record.token_sha256):
                raise BadCredentials("bad session token")
        return record

    async def mark_lost(self, record: SessionRecord) -> None:
        """Its owner is gone: every replica answers 4101 from now on."""
        lost = SessionRecord(**{**record.__dict__, "state": LOST})
        await self.shared.put_sessions([(lost, self.retention_s)])
