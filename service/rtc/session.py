"""Verification sessions: creation, single-use tokens, limits, expiry, and forgetting.

A session is bound to this process (it holds the peer connection). Its token authorises
exactly one WHIP offer, then the session's DELETE, result and events look-ups. Biometric data
(the portrait embedding, frames, the best frame) live only in the session object and
are dropped when the decision is made or the session expires. Its state changes only
through `Session.advance`, along the transitions listed in TRANSITIONS; reaching a final
state drops the biometrics and ends the session's events streams (its outbox).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import BadCredentials, RateLimited, SessionExpired, SessionNotFound
from service.liveness.challenges.settings import ChallengeSettings
from service.rtc.outbox import Outbox, OutboxSettings
from service.rtc.sdp import SdpSettings
from service.rtc.stalls import NetworkSettings

if TYPE_CHECKING:  # the decision module's type; it needs nothing of this one
    from service.rtc.decision import StreamOutcome


@dataclass(frozen=True)
class SessionSettings:
    ttl_s: float = 120.0
    max_ttl_s: float = 600.0
    # Concurrent sessions (created, connected or deciding); new ones answer 4290 "busy".
    # Sized from bench/stream_load.py: what the machine sustains at the analysis rate.
    max_active: int = 6
    # Sessions one API key may create per minute (attempt limit against brute force
    # and runaway retry loops), counted over all replicas.
    per_key_per_minute: int = 30
    # The hold-and-release challenges: timing rules, default and largest sets.
    challenges: ChallengeSettings = field(default_factory=ChallengeSettings)
    # A session created with no challenges (`challenges=0`) watches the face this long:
    # the old per-prompt time, in which the ZJU/GRID clips always showed a blink or
    # mouth movement and the best-frame choice had settled (min_observation_s).
    observation_s: float = 7.0
    # Frames analysed per second in a stream: 10 sees every blink (>= 100 ms) at least
    # once and leaves CPU for many streams per core.
    analysis_fps: float = 10.0
    # ... and this many while the challenge script only waits (ChallengeScript.frame_due:
    # a hold while the action reads on, a later pause but its last 1.1 s). Simulated
    # (bench/analysis_rate.py, 1000 honest 3-challenge sessions): 8% fewer frames, every
    # verdict and recorded time the same as at 10 fps; reels pass no more often (1 of
    # 4800 either way); a break inside a hold is timed from its first frame seen off,
    # up to one slow frame late, so a 0.4 s break passed 143/200 instead of 108/200
    # (0.3 s is tolerated by rule). Sessions without challenges, the reaction and
    # release windows and the first pause stay at analysis_fps: blinks need it.
    waiting_fps: float = 5.0
    # A best frame that stays among the kept ones this long is judged (silent liveness)
    # ahead of the decision, beside the next frames' analysis: the decision after the
    # last challenge then has only the newest kept frames left to judge (~13 ms each:
    # the face refined by YuNet, two PAD models). Kept frames churn early in a session,
    # so judging sooner costs more: on 12 blink clips looped to 15 s, 2 s gives 5.8
    # judgements a session (the decision alone makes 3) with 2.83 of the 3 final frames
    # judged ahead; 1 s gives 7.1 and 2.92, 3 s 4.8 and 2.75.
    prejudge_after_s: float = 2.0
    # A session is decided no sooner than this after the face was first seen, even when
    # its prompts were met at once: the best-frame choice (and so silent liveness)
    # needs a few seconds of video to be stable (one blink met in 0.5 s gave live
    # probabilities from 0.03 to 0.98 on the same clip in the browser test).
    min_observation_s: float = 2.0
    # A connected peer that sends no video for this long is decided as "no video".
    media_timeout_s: float = 10.0
    # Stalls of the video: paused challenge clock, keyframe requests, the `network`
    # answer (service/rtc/stalls.py).
    network: NetworkSettings = field(default_factory=NetworkSettings)
    # A decided session's result stays readable this long, then the session is forgotten.
    result_retention_s: float = 300.0
    # What a WHIP offer or trickle fragment may hold (service/rtc/sdp.py).
    sdp: SdpSettings = field(default_factory=SdpSettings)
    # Events-stream subscribers and their queues (service/rtc/outbox.py).
    events: OutboxSettings = field(default_factory=OutboxSettings)


class SessionState(StrEnum):
    """Where a session is; changed only through `Session.advance`."""

    CREATED = "created"  # waiting for its one WHIP offer
    CONNECTED = "connected"  # a peer connection; analysing once video comes
    DECIDING = "deciding"  # the analysis ended; the decision is being computed
    DECIDED = "decided"  # the result is stored (readable until result retention ends)
    EXPIRED = "expired"  # its TTL passed with no video to decide on
    ENDED = "ended"  # DELETE before any media


ACTIVE_STATES = frozenset({SessionState.CREATED, SessionState.CONNECTED,
                           SessionState.DECIDING})
FINAL_STATES = frozenset({SessionState.DECIDED, SessionState.EXPIRED, SessionState.ENDED})
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.CREATED: frozenset({SessionState.CONNECTED, SessionState.EXPIRED,
                                     SessionState.ENDED}),
    # a peer whose video never came expires; one with video is decided
    SessionState.CONNECTED: frozenset({SessionState.DECIDING, SessionState.EXPIRED}),
    SessionState.DECIDING: frozenset({SessionState.DECIDED}),
    SessionState.DECIDED: frozenset(),
    SessionState.EXPIRED: frozenset(),
    SessionState.ENDED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A bug: code tried to move a session along a path the state machine lacks."""


@dataclass
class Session:
    id: str
    key: str
    token_digest: bytes
    challenges: list[str]
    created_at: float
    expires_at: float
    portrait: np.ndarray | None = None  # embedding only, never the image
    portrait_detail: dict[str, Any] | None = None
    outbox: Outbox = field(default_factory=Outbox)
    state: SessionState = SessionState.CREATED
    offered: bool = False
    result: dict[str, Any] | None = None  # the answer's envelope, as the client got it
    # what that answer says, structured (logs, metrics): on the replica that decided it
    outcome: StreamOutcome | None = field(default=None, repr=False)
    decided_at: float | None = None  # when it reached a final state
    slot: str = ""  # its placement slot on this replica (service/cluster/replica.py), if any
    # told of each state change (the session directory of service/rtc/directory.py)
    on_change: Callable[[Session], None] | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def advance(self, to: SessionState, now: float | None = None) -> None:
        """The one way a session changes state. A final state drops the biometrics and
        ends the events streams (after the messages already sent)."""
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"session {self.state} -> {to}")
        self.state = to
        if to in FINAL_STATES:
            self.decided_at = time.time() if now is None else now
            self.forget_biometrics()
            self.outbox.close()
        if self.on_change is not None:
            self.on_change(self)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def check_token(self, token: str) -> None:
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        if not hmac.compare_digest(digest, self.token_digest):
            raise BadCredentials("bad session token")

    def forget_biometrics(self) -> None:
        self.portrait = None


@dataclass
class SessionStore:
    """The sessions this process holds. The per-key creation quota is counted in the
    shared state (service.cluster.shared_state), where every replica sees it."""

    max_active: int
    result_retention_s: float
    events: OutboxSettings = field(default_factory=OutboxSettings)
    sessions: dict[str, Session] = field(default_factory=dict)
    # called with a session after it was created and after each change of its state
    on_change: Callable[[Session], None] | None = None

    def active_count(self) -> int:
        return sum(1 for s in self.sessions.values() if s.active)

    def active_slots(self) -> list[str]:
        return [s.slot for s in self.sessions.values() if s.active and s.slot]

    def discard(self, session: Session) -> None:
        """Forget a session whose creation failed before it was answered."""
        self.sessions.pop(session.id, None)

    def check_capacity(self) -> None:
        """Raise RateLimited ("busy") when this process takes no more sessions now."""
        if self.active_count() >= self.max_active:
            raise RateLimited("busy: too many sessions in progress, retry shortly")

    def create(self, key: str, challenges: list[str], ttl_s: float,
               portrait: np.ndarray | None, portrait_detail: dict[str, Any] | None,
               now: float | None = None, slot: str = "") -> tuple[Session, str]:
        now = time.time() if now is None else now
        self.check_capacity()
        token = secrets.token_urlsafe(32)
        session = Session(
            id=secrets.token_urlsafe(16), key=key,
            token_digest=hashlib.sha256(token.encode()).digest(),
            challenges=challenges, created_at=now, expires_at=now + ttl_s,
            portrait=portrait, portrait_detail=portrait_detail,
            outbox=Outbox(self.events), on_change=self.on_change, slot=slot,
        )
        self.sessions[session.id] = session
        if self.on_change is not None:
            self.on_change(session)
        return session, token

    def get(self, session_id: str, token: str | None = None, now: float | None = None,
            allow_expired: bool = False) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise SessionNotFound()
        if token is not None:
            session.check_token(token)
        now = time.time() if now is None else now
        if not allow_expired and session.state == SessionState.EXPIRED:
            raise SessionExpired()
        if not allow_expired and session.active and session.expired(now):
            raise SessionExpired()
        return session

    def due(self, now: float) -> tuple[list[Session], list[str]]:
        """Sessions past their TTL that are still active, and ids to forget entirely."""
        expiring = [s for s in self.sessions.values() if s.active and s.expired(now)]
        forget = [sid for sid, s in self.sessions.items()
                  if not s.active and now >= max(s.expires_at, (s.decided_at or 0.0))
                  + self.result_retention_s]
        return expiring, forget
