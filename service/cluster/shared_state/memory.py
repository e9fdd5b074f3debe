"""The shared state of a single process, in its memory (the default: nothing to run).

Bounded whatever clients do: the replay cache holds at most `max_entries` fingerprints
(oldest dropped first), failure and quota windows are pruned as they slide, directory
records and heartbeats are dropped when they expire.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from service.cluster.shared_state.base import ReplicaInfo, SessionRecord


@dataclass
class ReplayCache:
    """Fingerprints of accepted requests, kept for as long as their timestamp is valid."""

    max_entries: int = 100_000
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def check_and_add(self, fingerprint: str, expires_at: float, now: float) -> bool:
        """Return False when the fingerprint was already seen (a replay)."""
        while self._seen:
            _, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)
        if fingerprint in self._seen:
            return False
        self._seen[fingerprint] = expires_at
        return True


@dataclass
class SlidingCounts:
    """Event times per name over a sliding window (failed logins per address,
    sessions created per API key)."""

    max_names: int = 10_000
    _times: dict[str, deque[float]] = field(default_factory=dict)

    def recent(self, name: str, now: float, window_s: float) -> deque[float]:
        times = self._times.setdefault(name, deque())
        while times and times[0] <= now - window_s:
            times.popleft()
        return times

    def add(self, name: str, now: float, window_s: float) -> None:
        self.recent(name, now, window_s).append(now)
        if len(self._times) > self.max_names:  # bound memory under a spray of names
            self._times = {n: t for n, t in self._times.items() if t}


@dataclass
class MemoryState:
    """SharedState of one process (see service.cluster.shared_state.base.SharedState)."""

    shared: bool = False
    replays: ReplayCache = field(default_factory=ReplayCache)
    _failures: SlidingCounts = field(default_factory=SlidingCounts)
    _quota: SlidingCounts = field(default_factory=SlidingCounts)
    _sessions: dict[str, tuple[SessionRecord, float]] = field(default_factory=dict)
    _replicas: dict[str, tuple[ReplicaInfo, float]] = field(default_factory=dict)
    # per replica id: slot -> until (monotonic)
    _slots: dict[str, dict[str, float]] = field(default_factory=dict)

    async def close(self) -> None:
        return None

    async def add_fingerprint(self, fingerprint: str, expires_at: float, now: float) -> bool:
        return self.replays.check_and_add(fingerprint, expires_at, now)

    async def failures(self, client: str, now: float, window_s: float) -> int:
        return len(self._failures.recent(client, now, window_s))

    async def add_failure(self, client: str, now: float, window_s: float) -> None:
        self._failures.add(client, now, window_s)

    async def take_quota(self, key: str, now: float, limit: int, window_s: float) -> str:
        if len(self._quota.recent(key, now, window_s)) >= limit:
            return ""
        self._quota.add(key, now, window_s)
        return repr(now)

    async def return_quota(self, key: str, ticket: str) -> None:
        times = self._quota.recent(key, float("-inf"), float("inf"))
        with contextlib.suppress(ValueError):
            times.remove(float(ticket))

    async def put_sessions(self, records: list[tuple[SessionRecord, float]]) -> None:
        now = time.monotonic()
        for record, keep_s in records:
            self._sessions[record.id] = (record, now + keep_s)
        for sid, (_, until) in list(self._sessions.items()):
            if until <= now:
                del self._sessions[sid]

    async def get_session(self, session_id: str) -> SessionRecord | None:
        record, until = self._sessions.get(session_id, (None, 0.0))
        return record if until > time.monotonic() else None

    async def heartbeat(self, info: ReplicaInfo, ttl_s: float) -> bool:
        now = time.monotonic()
        _, until = self._replicas.get(info.url, (None, 0.0))
        self._replicas[info.url] = (info, now + ttl_s)
        return until > now

    async def replicas(self) -> list[ReplicaInfo]:
        now = time.monotonic()
        return [info for info, until in self._replicas.values() if until > now]

    async def replica(self, url: str) -> ReplicaInfo | None:
        info, until = self._replicas.get(url, (None, 0.0))
        return info if until > time.monotonic() else None

    async def leave(self, info: ReplicaInfo) -> None:
        self._replicas.pop(info.url, None)

    def _taken(self, replica_id: str) -> dict[str, float]:
        now = time.monotonic()
        slots = self._slots.setdefault(replica_id, {})
        for slot in [s for s, until in slots.items() if until <= now]:
            del slots[slot]
        return slots

    async def reserve_slot(self, candidates: list[ReplicaInfo], prefer_id: str, slot: str,
                           hold_s: float) -> ReplicaInfo | None:
        best = pick_least_loaded(candidates, [len(self._taken(c.id)) for c in candidates],
                                 prefer_id)
        if best is not None:
            self._taken(best.id)[slot] = time.monotonic() + hold_s
        return best

    async def hold_slots(self, replica_id: str, slots: list[str], hold_s: float) -> None:
        taken = self._taken(replica_id)
        for slot in slots:
            taken[slot] = time.monotonic() + hold_s

    async def release_slots(self, replica_id: str, slots: list[str]) -> None:
        taken = self._taken(replica_id)
        for slot in slots:
            taken.pop(slot, None)

    async def slots_taken(self, replica_id: str) -> int:
        return len(self._taken(replica_id))


def pick_least_loaded(candidates: list[ReplicaInfo], taken: list[int], prefer_id: str
                      ) -> ReplicaInfo | None:
    """The candidate with a free slot and the fewest taken per unit of capacity
    (`prefer_id` first among equals, then the order given); the rule the Redis
    backend's script applies (service/cluster/shared_state/redis.py)."""
    best: tuple[ReplicaInfo, int] | None = None
    for info, used in zip(candidates, taken, strict=True):
        if info.draining or used >= info.capacity:
            continue
        if best is None:
            best = (info, used)
            continue
        held, held_used = best
        # used / capacity < held_used / held.capacity, without division
        lower, equal = (used * held.capacity < held_used * info.capacity,
                        used * held.capacity == held_used * info.capacity)
        if lower or (equal and info.id == prefer_id):
            best = (info, used)
    return best[0] if best is not None else None
