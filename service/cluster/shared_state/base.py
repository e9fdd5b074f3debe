"""What replicas share, behind one interface: `SharedState` and the records it holds.

One process alone keeps it in memory (service.cluster.shared_state.memory, the default: no
extra process); N replicas keep it in Redis (service.cluster.shared_state.redis) so they behave
like one big replica: a replayed request, a failed login, a session created, a result
decided or a replica's load is seen by all of them. Only ids, states, counters, token
digests and decision payloads are shared; frames, embeddings and portraits never leave
the memory of the replica that holds the session (spec 2.1, README "Privacy").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ReplicaSettings:
    # Shared secret of replica-to-replica calls (a session creation forwarded to the
    # replica that will own it). The same on every replica; required with redis_url.
    secret: str = ""
    # A replica announces itself (address, load) this often, and is taken for dead when
    # it has not for heartbeat_ttl_s: its running sessions then answer 4101 "session
    # lost". 5 heartbeats per TTL: a missed one or two (a GC pause, a slow Redis) is not
    # a death, and a real death is noticed within 10 s.
    heartbeat_interval_s: float = 2.0
    heartbeat_ttl_s: float = 10.0
    # Sessions (created, connected or deciding) this replica takes at once; 0 means
    # sessions.max_active (what bench/stream_load.py showed one machine sustains).
    capacity: int = 0
    # On SIGTERM a replica stops taking sessions and lets running ones finish for at
    # most this long, then exits. Above the default session TTL (120 s) plus the
    # decision and hang-up; a deployment allowing longer TTLs (sessions.max_ttl_s) and
    # its orchestrator's grace period (terminationGracePeriodSeconds) must be above it.
    drain_grace_s: float = 150.0
    # Every Redis key starts with this, so several deployments can share one Redis.
    key_prefix: str = "verify:"
    # A Redis command not answered in this long fails: the request answers 5030 at
    # once instead of hanging while the store is down.
    store_timeout_s: float = 1.0
    # A forwarded session creation (it includes the owner's portrait embedding) must be
    # answered in this long, else the next replica with room is tried.
    forward_timeout_s: float = 30.0


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica's heartbeat: who it is, where it answers, how loaded it is."""

    id: str  # random per process: a restarted replica at the same URL is another one
    url: str  # its externally reachable base URL (public_url)
    active: int
    capacity: int
    draining: bool = False

    @property
    def room(self) -> int:
        return 0 if self.draining else max(0, self.capacity - self.active)


@dataclass(frozen=True)
class SessionRecord:
    """A session as every replica sees it (the session directory)."""

    id: str
    owner_id: str  # ReplicaInfo.id of the replica holding its peer connection
    owner_url: str
    key: str  # the API key that created it (result polls signed by key must match)
    token_sha256: str  # hex digest of the bearer token (the token itself is never stored)
    state: str  # a SessionState value, or LOST
    expires_at: float
    result: dict[str, Any] | None = None  # the decision payload, once decided


LOST = "lost"  # the directory state of a session whose owner replica is gone


class SharedState(Protocol):
    """The operations the service needs from the shared state store. Every one may
    raise service.errors.StateStoreUnavailable (the Redis backend, while Redis is
    unreachable); the in-memory backend never does."""

    # True when other replicas may share this state (Redis); False: this process alone.
    shared: bool

    async def close(self) -> None: ...

    # --- authentication (service/http/auth.py) ---
    async def add_fingerprint(self, fingerprint: str, expires_at: float, now: float) -> bool:
        """Record a signed request's fingerprint; False when it was already seen."""

    async def failures(self, client: str, now: float, window_s: float) -> int:
        """Failed authentications of `client` in the last `window_s` seconds."""

    async def add_failure(self, client: str, now: float, window_s: float) -> None: ...

    # --- per-key session quota ---
    async def take_quota(self, key: str, now: float, limit: int, window_s: float) -> str:
        """Count one session creation for `key`: a ticket naming it, or "" (nothing
        counted) when `limit` were counted in the last `window_s` seconds."""

    async def return_quota(self, key: str, ticket: str) -> None:
        """Uncount a creation that did not happen (the store failed before its answer)."""

    # --- session directory and decided results ---
    async def put_sessions(self, records: list[tuple[SessionRecord, float]]) -> None:
        """Write each record, kept for its number of seconds."""

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    # --- replicas ---
    async def heartbeat(self, info: ReplicaInfo, ttl_s: float) -> bool:
        """Announce `info` for `ttl_s` seconds; False when the previous announcement
        was gone (the first one, or the store lost its data or missed us that long)."""

    async def replicas(self) -> list[ReplicaInfo]:
        """The replicas whose heartbeat has not expired."""

    async def replica(self, url: str) -> ReplicaInfo | None:
        """The live replica at `url`, if its heartbeat has not expired."""

    async def leave(self, info: ReplicaInfo) -> None:
        """Withdraw this replica's heartbeat (it is exiting)."""

    # --- placement slots (service/cluster/replica.py) ---
    async def reserve_slot(self, candidates: list[ReplicaInfo], prefer_id: str, slot: str,
                           hold_s: float) -> ReplicaInfo | None:
        """In one atomic step: the candidate with the fewest slots taken per unit of
        capacity that still has one free (`prefer_id` first among equals, then the
        order given), with `slot` taken on it for `hold_s` seconds; None when every
        candidate is full. Concurrent reservations see each other (a burst spreads)."""

    async def hold_slots(self, replica_id: str, slots: list[str], hold_s: float) -> None:
        """Keep (or take again) these slots of `replica_id` for `hold_s` more seconds."""

    async def release_slots(self, replica_id: str, slots: list[str]) -> None:
        """Give these slots of `replica_id` back (idempotent)."""

    async def slots_taken(self, replica_id: str) -> int:
        """Slots of `replica_id` taken now (its sessions and reservations in flight)."""
