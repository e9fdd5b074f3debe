"""Sessions of this process: create, connect (WHIP), end, expire, forget.

Owns the session store, each session's peer connection and analysis task, and a
janitor that ends sessions past their TTL (deciding those that had a peer, closing
their connections) and forgets decided ones after the result retention time, so
nothing piles up however many clients come and go. As one replica of several (shared
state in Redis) it also announces itself (service/cluster/replica.py) and publishes each
session's state and decision to the session directory (service/rtc/directory.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc.mediastreams import MediaStreamTrack

from service.cluster.replica import Replica
from service.cluster.shared_state import MemoryState, ReplicaSettings, SharedState
from service.errors import SessionConflict, SessionExpired, StateStoreUnavailable
from service.rtc import peer as peers
from service.rtc import turn
from service.rtc.directory import Directory
from service.rtc.intake import LatestFrame
from service.rtc.linkstats import LinkMonitor, keyframe_watch
from service.rtc.runner import StreamRun, StreamSettings
from service.rtc.sdp import TrickleCandidate
from service.rtc.session import Session, SessionState, SessionStore
from service.rtc.turn import TurnSettings
from service.vision.runtime import ModelRuntime

log = logging.getLogger("service.rtc")

# A decided session's peer stays up this long so the result message on the data
# channel is delivered before the connection closes.
HANG_UP_DELAY_S = 1.0


class SessionManager:
    def __init__(self, sections: StreamSettings, replicas: ReplicaSettings, url: str,
                 ice_servers: tuple[str, ...], turn_settings: TurnSettings,
                 shared: SharedState | None = None) -> None:
        """Its own sections, handed over by service.app: the streams' (`sections`), the
        replicas', this replica's external base `url`, the STUN/TURN servers and TURN
        credentials' settings."""
        self.sections = sections
        self.sessions = sessions = sections.sessions
        self.replicas = replicas
        self.turn_settings = turn_settings
        self.shared: SharedState = MemoryState() if shared is None else shared
        self.store = SessionStore(
            max_active=replicas.capacity or sessions.max_active,
            result_retention_s=sessions.result_retention_s, events=sessions.events)
        self.replica = Replica(
            self.shared, url=url.rstrip("/"),
            capacity=self.store.max_active, secret=replicas.secret,
            heartbeat_interval_s=replicas.heartbeat_interval_s,
            heartbeat_ttl_s=replicas.heartbeat_ttl_s,
            forward_timeout_s=replicas.forward_timeout_s,
            active_count=self.store.active_count, active_slots=self.store.active_slots)
        # the session directory: only when other replicas share the state
        self.directory: Directory | None = None
        if self.replica.clustered:
            self.directory = Directory(self.shared, self.replica.id, self.replica.url,
                                       sessions.result_retention_s,
                                       lambda: list(self.store.sessions.values()))
            self.store.on_change = self._changed
            self.replica.on_store_lost = self.directory.republish
        self.peers: dict[str, peers.Peer] = {}
        # parsed once: a malformed entry stops the start instead of failing each session
        self.ice_servers = peers.parse_ice_servers(ice_servers)
        turn.check(self.ice_servers, turn_settings)
        self.runtime: ModelRuntime | None = None
        self._janitor: asyncio.Task | None = None
        self._hang_ups: set[asyncio.Task] = set()  # decided peers closing after the result
        # told of each session reaching a final state (metrics, webhooks: service.app)
        self.on_final: list[Callable[[Session], None]] = []

    def start(self, runtime: ModelRuntime) -> None:
        """The models are loaded: sweep, and (with shared state) publish and announce."""
        self.runtime = runtime
        self._janitor = asyncio.create_task(self._sweep_forever(), name="session-janitor")
        if self.directory is not None:
            self.directory.start()
        self.replica.start()

    def ice_servers_for(self, session: Session) -> tuple[peers.IceServer, ...]:
        """The STUN/TURN servers of one session, its TURN credentials expiring with it
        (service/rtc/turn.py): handed to the client and used by our own peer."""
        return turn.for_session(self.ice_servers, self.turn_settings, session.id,
                                session.expires_at)

    def _changed(self, session: Session) -> None:
        assert self.directory is not None
        self.directory.changed(session)
        self.replica.nudge()  # the load changed

    async def publish(self, session: Session) -> None:
        """Make a new session visible to every replica before it is announced (its
        `201`); StateStoreUnavailable when it cannot be (the caller undoes it)."""
        if self.directory is not None:
            await self.directory.publish(session)

    async def publish_final(self, session: Session) -> None:
        """A session is over (decided, ended, expired): its record, and its placement
        slot given back, before the client, the events streams or the webhook hear of
        it, so whatever they do next on any replica sees it. With the store
        unreachable the record and the slot are retried in the background (no replica
        can answer about it meanwhile: 5030), and the session goes on."""
        if self.directory is None:
            return
        slot, session.slot = session.slot, ""  # no heartbeat holds it again
        try:
            await self.directory.publish(session)
            await self.replica.release(slot)
        except StateStoreUnavailable:
            log.warning("session outcome not published yet: state store unavailable")

    def discard(self, session: Session) -> None:
        """Forget a session whose creation failed before its answer (never published)."""
        self.store.discard(session)
        if self.directory is not None:
            self.directory.drop(session)

    async def drain(self) -> None:
        """SIGTERM: no new sessions; running ones finish (up to the grace period)."""
        flush = self.directory.flush if self.directory is not None else _nothing
        await self.replica.drain(self.replicas.drain_grace_s, flush)

    async def connect(self, session: Session, offer_sdp: str) -> str:
        """Answer the session's one and only offer."""
        if session.offered:
            raise SessionConflict()
        session.offered = True  # before any await: a concurrent second offer is refused
        assert self.runtime is not None
        runtime = self.runtime

        def on_video(track: MediaStreamTrack, peer: peers.Peer) -> None:
            receiver = next(r for r in peer.pc.getReceivers() if r.track is track)
            link = LinkMonitor(peer.pc, receiver)
            run = StreamRun(session, runtime, self.sections, self._decided, self.publish_final,
                            link, channel_offered="\nm=application " in offer_sdp)
            intake = LatestFrame(track)
            peer.tasks.append(asyncio.create_task(run.run(intake, peer.gone), name="analysis"))
            peer.tasks.append(asyncio.create_task(link.watch(), name="link"))
            peer.tasks.append(asyncio.create_task(keyframe_watch(
                receiver, link, lambda: intake.last_arrival, self.sessions.network),
                name="keyframes"))

        peer, answer = await peers.answer(offer_sdp, self.ice_servers_for(session), on_video,
                                          session.outbox.attach_channel)
        if session.state != SessionState.CREATED:  # expired or deleted while we negotiated
            await peer.close()
            raise SessionExpired()
        self.peers[session.id] = peer
        session.advance(SessionState.CONNECTED)
        return answer

    def _decided(self, session: Session) -> None:
        """The analysis produced its result: hang up (the result stays readable)."""
        self._final(session)
        peer = self.peers.pop(session.id, None)
        if peer is not None:
            task = asyncio.create_task(self._hang_up(peer), name="hang-up")
            self._hang_ups.add(task)
            task.add_done_callback(self._hang_ups.discard)

    def _final(self, session: Session) -> None:
        for listener in self.on_final:
            try:
                listener(session)
            except Exception:  # a listener's bug must not stop the session's own work
                log.exception("session final-state listener failed")

    async def _hang_up(self, peer: peers.Peer) -> None:
        await asyncio.sleep(HANG_UP_DELAY_S)
        await peer.close()

    async def end(self, session: Session) -> None:
        """DELETE: the client hangs up; a connected session is decided with what it has."""
        peer = self.peers.get(session.id)
        if peer is not None:
            peer.gone.set()
        elif session.state == SessionState.CREATED:
            session.advance(SessionState.ENDED)
            await self.publish_final(session)
            self._final(session)

    async def add_candidates(self, session: Session, candidates: list[TrickleCandidate]
                             ) -> int:
        peer = self.peers.get(session.id)
        if peer is None:
            raise SessionConflict("the session has no peer connection yet")
        return await peer.add_candidates(candidates)

    async def sweep(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        expiring, forget = self.store.due(now)
        for session in expiring:
            peer = self.peers.get(session.id)
            if peer is not None and any(
                    t.get_name() == "analysis" and not t.done() for t in peer.tasks):
                peer.gone.set()  # the analysis task decides and hangs up
            else:
                if peer is not None:  # connected, but no video track ever came
                    await self.peers.pop(session.id).close()
                session.advance(SessionState.EXPIRED, now)
                await self.publish_final(session)
                self._final(session)
        for session_id in forget:
            self.store.sessions.pop(session_id, None)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.sweep()
            except Exception:
                log.exception("session sweep failed")

    def end_event_streams(self) -> None:
        """Shutdown: every events stream ends (after what it has queued), so the
        server's graceful shutdown does not wait on streams that would outlive it."""
        for session in self.store.sessions.values():
            session.outbox.close()

    async def close(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
        if self.directory is not None:
            await self.directory.close(self.replicas.store_timeout_s * 2)
        await self.replica.close()
        for peer in list(self.peers.values()):
            await peer.close()
        self.peers.clear()
        for task in list(self._hang_ups):
            task.cancel()
        await asyncio.gather(*self._hang_ups, return_exceptions=True)


async def _nothing() -> None:
    return None
