"""State the replicas share (see base.py): in memory, or in Redis with SERVICE_REDIS_URL."""

from __future__ import annotations

from service.cluster.shared_state.base import (
    LOST,
    ReplicaInfo,
    ReplicaSettings,
    SessionRecord,
    SharedState,
)
from service.cluster.shared_state.memory import MemoryState


def open_shared_state(redis_url: str, settings: ReplicaSettings) -> SharedState:
    """In memory when `redis_url` is empty (one process, nothing else to run)."""
    if not redis_url:
        return MemoryState()
    from service.cluster.shared_state.redis import RedisState  # only imported when used

    return RedisState(redis_url, settings.key_prefix, settings.store_timeout_s)


__all__ = ["LOST", "MemoryState", "ReplicaInfo", "ReplicaSettings", "SessionRecord",
           "SharedState", "open_shared_state"]
