"""The shared state of N replicas in Redis (SERVICE_REDIS_URL): the `redis` asyncio client.

Keys (all under `replicas.key_prefix`, all with a TTL, so nothing outlives its use):

    replay:{sha256}    SET NX PX   a signed request seen (until its timestamp leaves the window)
    fail:{address}     sorted set  failed authentications (scores: times), the lockout window
    quota:{api key}    sorted set  sessions created, the per-key window (checked and
                                   added atomically by a Lua script)
    session:{id}       hash        owner replica (id, URL), API key, token digest, state,
                                   expiry, and the decision payload once decided
    replica:{url}      string      the replica's heartbeat (JSON: id, url, load), PX TTL
    replicas           set         the URLs that sent heartbeats (pruned as they expire)
    slots:{replica id} sorted set  placement slots taken on that replica (its sessions and
                                   reservations in flight; scores: until when, on the
                                   Redis clock), taken by a Lua script that picks the
                                   least-loaded replica, so a burst spreads

One round trip per operation (pipelines where there are several commands). Redis down
or unreachable: every operation raises StateStoreUnavailable after at most
`store_timeout_s` (one retry on a fresh connection, which is what a restarted Redis
needs: the pooled connections died with it), and the client reconnects by itself when
Redis is back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from service.cluster.shared_state.base import ReplicaInfo, SessionRecord
from service.errors import StateStoreUnavailable

# Count and add in one step, so replicas creating sessions for one key at the same
# moment cannot both take the last slot. KEYS[1] = quota set; ARGV = now, window_s,
# limit, a unique member.
_TAKE_QUOTA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""
# Scores of the slot sets are milliseconds on Redis's own clock (TIME): one clock for
# every replica. Reserve: KEYS = the candidates' slot sets; ARGV = hold_ms, slot, the
# preferred candidate's index (1-based, 0: none), then each candidate's capacity (0
# when it takes no sessions). Returns the chosen index, 0 when every one is full.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function keep(key, hold)
  if redis.call('PTTL', key) < hold then redis.call('PEXPIRE', key, hold) end
end
"""
_RESERVE_SLOT = _NOW_MS + """
local hold, prefer = tonumber(ARGV[1]), tonumber(ARGV[3])
local best, best_used, best_cap = 0, 0, 1
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local used, cap = redis.call('ZCARD', key), tonumber(ARGV[3 + i])
  if used < cap and (best == 0 or used * best_cap < best_used * cap
      or (used * best_cap == best_used * cap and i == prefer)) then
    best, best_used, best_cap = i, used, cap
  end
end
if best > 0 then
  redis.call('ZADD', KEYS[best], now + hold, ARGV[2])
  keep(KEYS[best], hold)
end
return best
"""
# KEYS[1] = a replica's slot set; ARGV = hold_ms, then the slots to hold.
_HOLD_SLOTS = _NOW_MS + """
local hold = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + hold, ARGV[i]) end
keep(KEYS[1], hold)
return 0
"""
_SLOTS_TAKEN = _NOW_MS + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisState:
    """SharedState in Redis (see service.cluster.shared_state.base.SharedState)."""

    shared = True

    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self.redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
        self.prefix = prefix
        self._take_quota = self.redis.register_script(_TAKE_QUOTA)
        self._reserve_slot = self.redis.register_script(_RESERVE_SLOT)
        self._hold_slots = self.redis.register_script(_HOLD_SLOTS)
        self._slots_taken = self.redis.register_script(_SLOTS_TAKEN)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @asynccontextmanager
    async def _store(self) -> AsyncIterator[None]:
        try:
            yield
        except UNREACHABLE as exc:
            raise StateStoreUnavailable() from exc

    async def close(self) -> None:
        await self.redis.aclose()

    async def add_fingerprint(self, fingerprint: str, expires_at: float, now: float) -> bool:
        async with self._store():
            added = await self.redis.set(self._k("replay", fingerprint), "1", nx=True,
                                         px=_ms(expires_at - now))
        return bool(added)

    async def failures(self, client: str, now: float, window_s: float) -> int:
        async with self._store():
            return int(await self.redis.zcount(self._k("fail", client), f"({now - window_s}",
                                               "+inf"))

    async def add_failure(self, client: str, now: float, window_s: float) -> None:
        key = self._k("fail", client)
        async with self._store(), self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - window_s)
            pipe.zadd(key, {f"{now}:{secrets.token_hex(4)}": now})
            pipe.pexpire(key, _ms(window_s))
            await pipe.execute()

    async def take_quota(self, key: str, now: float, limit: int, window_s: float) -> str:
        ticket = f"{now}:{secrets.token_hex(4)}"
        async with self._store():
            taken = await self._take_quota(keys=[self._k("quota", key)],
                                           args=[now, window_s, limit, ticket])
        return ticket if taken else ""

    async def return_quota(self, key: str, ticket: str) -> None:
        async with self._store():
            await self.redis.zrem(self._k("quota", key), ticket)

    async def put_sessions(self, records: list[tuple[SessionRecord, float]]) -> None:
        async with self._store(), self.redis.pipeline(transaction=False) as pipe:
            for record, keep_s in records:
                key = self._k("session", record.id)
                fields: dict[FieldT, EncodableT] = {
                    k: str(v) for k, v in asdict(record).items() if k != "result"}
                if record.result is not None:
                    fields["result"] = json.dumps(record.result)
                pipe.hset(key, mapping=fields)
                pipe.pexpire(key, _ms(keep_s))
            await pipe.execute()

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self._store():
            stored = await self.redis.hgetall(self._k("session", session_id))
        fields = {str(k): str(v) for k, v in stored.items()}  # decode_responses: all str
        if not fields or "owner_url" not in fields:
            return None
        result = fields.get("result")
        return SessionRecord(
            id=fields["id"], owner_id=fields["owner_id"], owner_url=fields["owner_url"],
            key=fields["key"], token_sha256=fields["token_sha256"], state=fields["state"],
            expires_at=float(fields["expires_at"]),
            result=json.loads(result) if result else None)

    async def heartbeat(self, info: ReplicaInfo, ttl_s: float) -> bool:
        async with self._store(), self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._k("replica", info.url), json.dumps(asdict(info)),
                     px=_ms(ttl_s), get=True)
            pipe.sadd(self._k("replicas"), info.url)
            previous, _ = await pipe.execute()
        return previous is not None

    async def replicas(self) -> list[ReplicaInfo]:
        async with self._store():
            urls = sorted(str(u) for u in await self.redis.smembers(self._k("replicas")))
            if not urls:
                return []
            beats = await self.redis.mget([self._k("replica", u) for u in urls])
            gone = [u for u, beat in zip(urls, beats, strict=True) if beat is None]
            if gone:
                await self.redis.srem(self._k("replicas"), *gone)
        return [ReplicaInfo(**json.loads(beat)) for beat in beats if beat is not None]

    async def replica(self, url: str) -> ReplicaInfo | None:
        async with self._store():
            beat = await self.redis.get(self._k("replica", url))
        return ReplicaInfo(**json.loads(beat)) if beat else None

    async def leave(self, info: ReplicaInfo) -> None:
        async with self._store(), self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._k("replica", info.url))
            pipe.srem(self._k("replicas"), info.url)
            await pipe.execute()

    async def reserve_slot(self, candidates: list[ReplicaInfo], prefer_id: str, slot: str,
                           hold_s: float) -> ReplicaInfo | None:
        if not candidates:
            return None
        prefer = next((i + 1 for i, c in enumerate(candidates) if c.id == prefer_id), 0)
        capacities = [0 if c.draining else c.capacity for c in candidates]
        async with self._store():
            chosen = int(await self._reserve_slot(
                keys=[self._k("slots", c.id) for c in candidates],
                args=[_ms(hold_s), slot, prefer, *capacities]))
        return candidates[chosen - 1] if chosen else None

    async def hold_slots(self, replica_id: str, slots: list[str], hold_s: float) -> None:
        async with self._store():
            await self._hold_slots(keys=[self._k("slots", replica_id)],
                                   args=[_ms(hold_s), *slots])

    async def release_slots(self, replica_id: str, slots: list[str]) -> None:
        if not slots:
            return
        async with self._store():
            await self.redis.zrem(self._k("slots", replica_id), *slots)

    async def slots_taken(self, replica_id: str) -> int:
        async with self._store():
            return int(await self._slots_taken(keys=[self._k("slots", replica_id)]))
