"""The shared state contract, on both backends: in memory and a real redis-server.

Each test runs against MemoryState and RedisState (a redis-server of our own on a free
loopback port, emptied between tests); two RedisState clients on one server stand for
two replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from service.cluster.replica import Replica
from service.cluster.shared_state import MemoryState, ReplicaInfo, SessionRecord, SharedState
from service.cluster.shared_state.redis import RedisState
from service.errors import RateLimited, StaleTimestamp, StateStoreUnavailable
from service.http.auth import Authenticator, make_token
from testing.replicas import REDIS_SERVER, RedisServer, free_port, redis_server

needs_redis = pytest.mark.skipif(REDIS_SERVER is None,
                                 reason="redis-server is not installed "
                                        "(scripts/install-system-packages.sh)")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (scripts/install-system-packages.sh)")
    with redis_server() as server:
        yield server


def redis_state(server: RedisServer) -> RedisState:
    return RedisState(server.url, "test:", timeout_s=1.0)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def state(request) -> AsyncIterator[SharedState]:
    if request.param == "memory":
        yield MemoryState()
        return
    server = request.getfixturevalue("redis")
    server.command("FLUSHALL")
    shared = redis_state(server)
    yield shared
    await shared.close()


async def test_a_fingerprint_is_new_once_until_it_expires(state):
    now = time.time()
    assert await state.add_fingerprint("f1", now + 0.3, now)
    assert not await state.add_fingerprint("f1", now + 0.3, now)
    assert await state.add_fingerprint("f2", now + 0.3, now)
    await asyncio.sleep(0.5)
    later = time.time()
    assert await state.add_fingerprint("f1", later + 0.3, later)


async def test_failures_count_per_client_over_a_sliding_window(state):
    for t in (100.0, 110.0, 120.0):
        await state.add_failure("10.0.0.1", t, 60.0)
    assert await state.failures("10.0.0.1", 121.0, 60.0) == 3
    assert await state.failures("10.0.0.2", 121.0, 60.0) == 0
    assert await state.failures("10.0.0.1", 165.0, 60.0) == 2  # the first left the window
    assert await state.failures("10.0.0.1", 181.0, 60.0) == 0


async def test_quota_counts_per_key_and_refuses_past_the_limit(state):
    assert await state.take_quota("k", 0.0, 2, 60.0)
    assert await state.take_quota("k", 10.0, 2, 60.0)
    assert not await state.take_quota("k", 20.0, 2, 60.0)  # nothing counted
    assert await state.take_quota("other", 20.0, 2, 60.0)
    assert await state.take_quota("k", 61.0, 2, 60.0)  # the first left the window
    assert not await state.take_quota("k", 62.0, 2, 60.0)


async def test_a_quota_ticket_returned_counts_no_more(state):
    first = await state.take_quota("k", 0.0, 2, 60.0)
    assert await state.take_quota("k", 1.0, 2, 60.0)
    assert not await state.take_quota("k", 2.0, 2, 60.0)
    await state.return_quota("k", first)  # that creation never happened
    assert await state.take_quota("k", 3.0, 2, 60.0)
    assert not await state.take_quota("k", 4.0, 2, 60.0)


def replica_info(name: str, capacity: int, draining: bool = False) -> ReplicaInfo:
    return ReplicaInfo(id=name, url=f"http://{name}:8080", active=0, capacity=capacity,
                       draining=draining)


async def test_slots_go_to_the_least_loaded_replica_per_capacity_the_caller_first(state):
    a, b, c = replica_info("a", 2), replica_info("b", 4), replica_info("c", 9, draining=True)
    picks = [await state.reserve_slot([a, b, c], "a", f"s{i}", 30.0) for i in range(7)]
    # a is preferred among equals; then b (0/4 < 1/2), b (1/4 < 1/2), a (2/4 = 1/2,
    # preferred), b, b; then both are full and the draining one takes nothing
    assert [p.id if p else None for p in picks] == ["a", "b", "b", "a", "b", "b", None]
    assert (await state.slots_taken("a"), await state.slots_taken("b")) == (2, 4)
    await state.release_slots("a", ["s0", "s0", "unknown"])  # idempotent
    assert await state.slots_taken("a") == 1
    assert (await state.reserve_slot([a, b], "b", "s9", 30.0)).id == "a"


async def test_a_slot_lapses_unless_held_and_holding_takes_it_again(state):
    a = replica_info("a", 1)
    assert (await state.reserve_slot([a], "a", "s1", 0.3)).id == "a"
    assert await state.reserve_slot([a], "a", "s2", 0.3) is None  # full
    await state.hold_slots("a", ["s1"], 0.6)
    await asyncio.sleep(0.4)
    assert await state.slots_taken("a") == 1  # held beyond the reservation
    await asyncio.sleep(0.4)
    assert await state.slots_taken("a") == 0  # not held again: lapsed
    await state.hold_slots("a", ["s1"], 30.0)  # taken again (a store that lost it)
    assert await state.slots_taken("a") == 1


@needs_redis
async def test_concurrent_reservations_from_two_replicas_spread_evenly(redis):
    """A burst placed by two replicas at once: each reservation sees the others."""
    redis.command("FLUSHALL")
    placers = [redis_state(redis) for _ in range(2)]
    a, b = replica_info("a", 10), replica_info("b", 10)
    picks = await asyncio.gather(*(p.reserve_slot([a, b], p_id, f"{p_id}{i}", 30.0)
                                   for i in range(8)
                                   for p, p_id in zip(placers, ("a", "b"), strict=True)))
    assert sorted(p.id for p in picks).count("a") == 8
    assert (await placers[0].slots_taken("a"), await placers[0].slots_taken("b")) == (8, 8)
    for p in placers:
        await p.close()


async def test_session_records_round_trip_and_expire(state):
    record = SessionRecord(id="s1", owner_id="r1", owner_url="http://10.0.0.5:8080",
                           key="k", token_sha256="ab" * 32, state="created",
                           expires_at=1_764_000_000.5)
    decided = SessionRecord(**{**record.__dict__, "id": "s2", "state": "decided",
                               "result": {"messageString": {"status": "2000"},
                                          "infoList": [{"veritem": []}]}})
    await state.put_sessions([(record, 60.0), (decided, 0.3)])
    assert await state.get_session("s1") == record
    assert await state.get_session("s2") == decided
    assert await state.get_session("nope") is None
    await asyncio.sleep(0.5)
    assert await state.get_session("s2") is None
    assert await state.get_session("s1") == record


async def test_heartbeats_list_live_replicas_until_they_expire_or_leave(state):
    a = ReplicaInfo(id="a1", url="http://a:8080", active=1, capacity=4)
    b = ReplicaInfo(id="b1", url="http://b:8080", active=0, capacity=4, draining=True)
    assert not await state.heartbeat(a, 0.4)  # the first announcement
    assert await state.heartbeat(a, 0.4)  # the previous one was still there
    await state.heartbeat(b, 30.0)
    assert sorted(await state.replicas(), key=lambda r: r.id) == [a, b]
    assert await state.replica("http://a:8080") == a
    assert b.room == 0 and a.room == 3
    await asyncio.sleep(0.6)
    assert await state.replicas() == [b] and await state.replica("http://a:8080") is None
    await state.leave(b)
    assert await state.replicas() == []


@needs_redis
async def test_two_replicas_share_replays_and_lockouts(redis):
    """The same signed request at replica A then B: B answers 4011; failures spread
    over A and B lock the address out on both."""
    redis.command("FLUSHALL")
    a_state, b_state = redis_state(redis), redis_state(redis)
    a, b = (Authenticator(keys={"k": "s"}, window_s=300, reject_replays=True, max_failed=4,
                          failed_window_s=60, shared=s) for s in (a_state, b_state))
    now = time.time()
    ts = str(int(now))
    await a.verify("c", "k", ts, make_token("s", "k", ts), "body", now=now)
    with pytest.raises(StaleTimestamp, match="replay"):
        await b.verify("c", "k", ts, make_token("s", "k", ts), "body", now=now)
    # that replay was the first failure of "c"; three more, spread over both
    for replica in (a, b, a):
        with pytest.raises(Exception, match="bad token|unknown key"):
            await replica.verify("c", "k", ts, "0" * 64, "x", now=now)
    for replica in (a, b):
        with pytest.raises(RateLimited):
            await replica.verify("c", "k", ts, make_token("s", "k", ts), "fresh", now=now)
    await a.verify("d", "k", ts, make_token("s", "k", ts), "fresh", now=now)  # others pass
    await a_state.close()
    await b_state.close()


@needs_redis
async def test_quota_is_atomic_across_concurrent_replicas(redis):
    redis.command("FLUSHALL")
    states = [redis_state(redis) for _ in range(5)]
    now = time.time()
    taken = await asyncio.gather(*(s.take_quota("k", now, 3, 60.0)
                                   for s in states for _ in range(4)))
    assert sum(bool(t) for t in taken) == 3
    for s in states:
        await s.close()


async def test_an_unreachable_store_answers_5030_at_once():
    shared = RedisState(f"redis://127.0.0.1:{free_port()}/0", "test:", timeout_s=1.0)
    for call in (shared.add_fingerprint("f", time.time() + 10, time.time()),
                 shared.failures("c", 0.0, 60.0), shared.get_session("s"),
                 shared.replicas()):
        with pytest.raises(StateStoreUnavailable) as caught:
            await call
        assert caught.value.status == "5030" and caught.value.http_status == 503
    await shared.close()


@needs_redis
async def test_the_client_recovers_when_redis_comes_back(redis):
    redis.command("FLUSHALL")
    shared = redis_state(redis)
    assert await shared.add_fingerprint("before", time.time() + 60, time.time())
    redis.stop()
    try:
        with pytest.raises(StateStoreUnavailable):
            await shared.add_fingerprint("during", time.time() + 60, time.time())
    finally:
        redis.start()
    # the same client, no reconnect by hand: the restarted (empty) Redis answers
    assert await shared.add_fingerprint("after", time.time() + 60, time.time())
    await shared.close()


def test_replica_settings_come_from_the_environment():
    from service.config import load_config

    cfg = load_config(env={"SERVICE_REDIS_URL": "redis://10.0.0.2:6379/1",
                           "SERVICE_PUBLIC_URL": "http://10.0.0.5:8080",
                           "SERVICE_REPLICAS__SECRET": "s3",
                           "SERVICE_REPLICAS__CAPACITY": "3",
                           "SERVICE_REPLICAS__HEARTBEAT_TTL_S": "6"})
    assert cfg.redis_url == "redis://10.0.0.2:6379/1" and cfg.public_url.endswith(":8080")
    assert (cfg.replicas.secret, cfg.replicas.capacity, cfg.replicas.heartbeat_ttl_s) == \
        ("s3", 3, 6.0)
    defaults = load_config(env={})
    assert defaults.redis_url == "" and defaults.replicas.heartbeat_interval_s == 2.0
    assert defaults.replicas.drain_grace_s > defaults.sessions.ttl_s


async def test_a_replicas_heartbeat_stops_when_cancelled_as_it_is_nudged(redis):
    """SIGTERM's drain nudges the heartbeat and shutdown then cancels it: the cancel
    must end the task even when it lands as the wake-up does (Python 3.11's wait_for
    swallowed it there, the loop beat on, and the replica never exited)."""
    shared = redis_state(redis)
    try:
        for _ in range(20):
            replica = Replica(shared, "http://127.0.0.1:1", 1, "s", 30.0, 60.0, 5.0,
                              lambda: 0)
            replica.start()
            await asyncio.sleep(0.05)  # beaten once, now waiting for the next beat
            replica.nudge()
            replica._task.cancel()
            await asyncio.wait_for(asyncio.gather(replica._task, return_exceptions=True), 5)
            await replica.close()
    finally:
        await shared.close()
