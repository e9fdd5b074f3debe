"""Three replicas behave like one: real `python -m service` processes on one real Redis.

Redis (our own redis-server on a free loopback port) and three replicas A, B, C are
started once for the module (their models load in parallel). The tests run in file
order and the last ones stop replicas: Redis is stopped and restarted, C is drained
with SIGTERM, A is killed with SIGKILL. Replicas announce themselves every 0.5 s and
are dead after 3 s without (the defaults are 2 s and 10 s), so a death is seen
quickly; each takes one session at a time, so "full" is one session away.

Nothing here waits a fixed time or relies on a lucky order: every wait is for a
condition (`until`, with a deadline that only bounds a failure), and which replica
gets a session follows from the placement rule (the least-loaded replica with a free
slot, the receiving one first among equals), whose slots are freed before a DELETE or
a result is answered, so each test starts from idle replicas without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
from conftest import DATA, data_bytes, status_of

from testing.client import signed_fields
from testing.replicas import (
    KEY,
    REDIS_SERVER,
    SECRET,
    RedisServer,
    Replica,
    heartbeats,
    redis_server,
    replica_set,
    slots_taken,
    until,
)
from testing.rtc_client import ClipTrack, EventStream, WhipClient, create_session
from testing.videos import decode_all

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed "
                                "(scripts/install-system-packages.sh)")
HEARTBEAT_TTL_S = 3.0
SETTINGS = {
    "REPLICAS__HEARTBEAT_INTERVAL_S": "0.5", "REPLICAS__HEARTBEAT_TTL_S": str(HEARTBEAT_TTL_S),
    "REPLICAS__CAPACITY": "1", "REPLICAS__DRAIN_GRACE_S": "60",
    "SESSIONS__OBSERVATION_S": "3", "SESSIONS__MEDIA_TIMEOUT_S": "5",
    "AUTH__MAX_FAILED_AUTH": "6", "AUTH__FAILED_AUTH_WINDOW_S": "30",
    "WORKERS": "1",
}
# A portrait and a clip of the same person: the session compares them on its owner.
PORTRAIT = "spoof/live_frames/000001M.jpg"
CLIP = "blink/zju/000001M_FBN.mp4"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(redis) -> Iterator[list[Replica]]:
    with replica_set(redis.url, 3, **SETTINGS) as started:
        yield started


@pytest_asyncio.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
        yield session


@pytest.fixture(scope="module")
def frames() -> list:
    return decode_all((DATA / CLIP).read_bytes())


def owner_of(session: dict, replicas: list[Replica]) -> Replica:
    return next(r for r in replicas if session["whip_url"].startswith(r.url + "/"))


def on(replica: Replica, url: str) -> str:
    """The same path on another replica."""
    return re.sub(r"^http://[^/]+", replica.url, url)


async def get_json(http: aiohttp.ClientSession, url: str, token: str | None = None
                   ) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def new_session(http, replica: Replica, **fields) -> dict:
    status, session = await create_session(http, replica.url, KEY, SECRET, **fields)
    assert status == 201, session
    return session


async def end(http, session: dict) -> None:
    async with http.delete(session["whip_url"], headers={
            "Authorization": f"Bearer {session['session_token']}"}) as resp:
        assert resp.status == 200


async def idle(redis: RedisServer, replicas: list[Replica]) -> None:
    """Every replica announced and no slot taken: the placement rule then says where
    each new session goes. Sessions ended and results sent free their slots before
    they are answered, so this holds at once after the previous test."""
    urls = {r.url for r in replicas}

    async def check() -> bool:
        announced = await asyncio.to_thread(heartbeats, redis)
        taken = await asyncio.to_thread(slots_taken, redis)
        return urls <= set(announced) and not any(taken[u] for u in urls)

    await until(check, "idle replicas")


async def streaming(http, session: dict, frames: list, seen_from: Replica) -> WhipClient:
    """A client streaming the clip to the session's owner, once `seen_from` reads the
    session as connected (the owner has its peer; a condition, not a sleep)."""
    client = WhipClient(session, http)
    assert await client.connect(ClipTrack(frames, fps=15)) == 201

    async def connected() -> bool:
        return await state_on(http, seen_from, session) == "connected"

    await until(connected, "the session streaming")
    return client


async def state_on(http, replica: Replica, session: dict) -> str:
    """The session's state as `replica` reads it from the directory."""
    status, body = await get_json(http, on(replica, session["result_url"]),
                                  session["session_token"])
    return body["detail"]["state"] if status == 202 else f"{status}"


async def test_a_session_placed_on_a_is_redirected_from_b_streamed_and_read_on_b_and_c(
        http, replicas, frames, redis):
    a, b, c = replicas
    await idle(redis, replicas)
    img = base64.b64encode(data_bytes(PORTRAIT)).decode()
    session = await new_session(http, a, challenges=0, img=img)
    assert session["whip_url"] == f"{a.url}/v1/sessions/{session['session_id']}/whip"
    assert session["result_url"].startswith(a.url)
    # a WHIP offer reaching B answers 307 to the owner's WHIP resource (RFC 9725 4.5)
    client = WhipClient(dict(session, whip_url=on(b, session["whip_url"])), http)
    async with http.post(client.session["whip_url"], data="v=0\r\n", allow_redirects=False,
                         headers={"Content-Type": "application/sdp",
                                  "Authorization": f"Bearer {client.token}"}) as resp:
        assert resp.status == 307 and resp.headers["Location"] == session["whip_url"]
    # a screen watches the session's events on C while it streams to A
    watcher = EventStream(dict(session, events_url=on(c, session["events_url"])), http)
    watching = asyncio.create_task(watcher.read(timeout=300))
    await asyncio.wait_for(watcher.attached.wait(), 120)
    assert watcher.status == 200
    client = WhipClient(session, http)
    assert await client.connect(ClipTrack(frames, fps=15)) == 201
    assert client.location == session["whip_url"]  # absolute, the owner's
    try:
        payload = await asyncio.wait_for(client.result, 180)
    finally:
        await client.hang_up()
    assert status_of(payload) == "2000", payload["messageString"]
    assert [i["desc"] for i in payload["infoList"][0]["veritem"]][5] == "Decision result:yes"
    for replica in (b, c):  # the decided result, from the shared directory
        status, body = await get_json(http, on(replica, session["result_url"]),
                                      session["session_token"])
        assert status == 200 and body == payload
        query = signed_fields(KEY, SECRET)
        async with http.get(on(replica, session["result_url"]), params=query) as resp:
            assert resp.status == 200 and (await resp.json()) == payload
    await asyncio.wait_for(watching, 120)
    assert watcher.ended and watcher.kinds[-1] == "result"
    assert watcher.messages[-1]["payload"] == payload
    # nothing biometric reached Redis: no portrait, no embedding, no frame
    stored = stored_values(redis)
    assert b'"similarity"' in stored  # the decision payload is there (the scan sees it)
    assert img[:64].encode() not in stored and data_bytes(PORTRAIT)[:64] not in stored
    assert not re.search(rb"(-?\d+\.\d+(e-?\d+)?,\s*){64}", stored)  # no vector
    assert len(stored) < 64_000


def stored_values(redis: RedisServer) -> bytes:
    """Every key and value in Redis, read back by type."""
    read = {b"string": ("GET",), b"hash": ("HGETALL",), b"zset": ("ZRANGE", "0", "-1"),
            b"set": ("SMEMBERS",), b"list": ("LRANGE", "0", "-1")}
    out = []
    for key in redis.command("KEYS", "*").split():
        kind = redis.command("TYPE", key.decode()).strip()
        out += [key, redis.command(read[kind][0], key.decode(), *read[kind][1:])]
    return b"\n".join(out)


async def test_a_replayed_request_and_spread_failures_count_on_every_replica(replicas):
    a, b, _ = replicas
    # a client of its own address (127.0.0.2), so its lockout leaves the others alone
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        signed = {**signed_fields(KEY, SECRET), "typeId": "999"}
        async with http.post(f"{a.url}/api/verify", data=signed) as resp:
            assert status_of(await resp.json()) == "4006"  # authenticated, unknown type
        async with http.post(f"{b.url}/api/verify", data=signed) as resp:
            body = await resp.json()
            assert resp.status == 401 and status_of(body) == "4011", body
        # the replay was failure 1 of 6; five more, alternating replicas
        for i in range(5):
            bad = {**signed_fields(KEY, "wrong secret"), "typeId": "21"}
            async with http.post(f"{(a, b)[i % 2].url}/api/verify", data=bad) as resp:
                assert status_of(await resp.json()) == "4010"
        for replica in (a, b):
            fresh = {**signed_fields(KEY, SECRET), "typeId": "999", "n": replica.url}
            async with http.post(f"{replica.url}/api/verify", data=fresh) as resp:
                assert resp.status == 429 and status_of(await resp.json()) == "4290"


async def test_sessions_go_to_replicas_with_room_then_busy(http, replicas, redis):
    a, b, c = replicas
    await idle(redis, replicas)
    first = await new_session(http, a, challenges=0)
    assert owner_of(first, replicas) is a  # all idle: the receiving replica keeps it
    second = await new_session(http, a, challenges=0)  # A is full: placed elsewhere
    third = await new_session(http, a, challenges=0)
    owners = {owner_of(s, replicas).url for s in (first, second, third)}
    assert owners == {a.url, b.url, c.url}
    for replica in replicas:  # every replica full
        status, body = await create_session(http, replica.url, KEY, SECRET, challenges=0)
        assert status == 429 and status_of(body) == "4290" and "busy" in \
            body["messageString"]["value"]
    for session in (first, second, third):
        await end(http, session)


async def test_redis_down_answers_5030_then_recovers_without_restarts(http, replicas, redis):
    a, b, _ = replicas
    await idle(redis, replicas)
    pids = [r.proc.pid for r in replicas]
    before = await new_session(http, b, challenges=0)  # waiting for its offer
    assert owner_of(before, replicas) is b
    redis.stop()
    try:
        for replica in (a, b):
            status, body = await create_session(http, replica.url, KEY, SECRET,
                                                challenges=0)
            assert status == 503 and status_of(body) == "5030", body
            assert body["infoList"] == []
            async with http.post(f"{replica.url}/api/verify",
                                 data={**signed_fields(KEY, SECRET), "typeId": "21"}) as resp:
                assert resp.status == 503 and status_of(await resp.json()) == "5030"
    finally:
        redis.start()
    created: list[dict] = []

    async def created_on_b() -> bool:  # the replicas reconnect by themselves
        status, session = await create_session(http, b.url, KEY, SECRET, challenges=0)
        # 5030 until B reconnects; "busy" (B holds `before`) until the other replicas
        # announced themselves to the empty Redis (within one heartbeat interval)
        assert status in (201, 503) or "busy" in session["messageString"]["value"], session
        if status == 201:
            created.append(session)
        return status == 201

    await until(created_on_b, "a session created after Redis came back")
    await end(http, created[0])

    async def republished() -> bool:  # the restarted Redis came back empty
        return await state_on(http, a, before) == "created"

    await until(republished, "B's session published again")
    await end(http, before)
    assert [r.proc.pid for r in replicas] == pids and all(r.proc.poll() is None
                                                         for r in replicas)


async def test_sigterm_drains_the_running_session_and_its_result_stays_readable(
        http, replicas, frames, redis):
    _, b, c = replicas
    await idle(redis, replicas)
    session = await new_session(http, c, challenges=0)
    assert owner_of(session, replicas) is c
    client = await streaming(http, session, frames, seen_from=b)
    c.send(signal.SIGTERM)

    async def draining() -> bool:
        return not await asyncio.to_thread(c.ready)

    await until(draining, "C draining")
    async with http.get(f"{c.url}/readyz") as resp:
        assert resp.status == 503 and (await resp.json())["status"] == "draining"
    async with http.get(f"{c.url}/healthz") as resp:
        assert resp.status == 200
    moved = await new_session(http, c, challenges=0)  # C takes no new sessions
    assert owner_of(moved, replicas) is not c
    await end(http, moved)
    try:
        payload = await asyncio.wait_for(client.result, 180)
    finally:
        await client.hang_up()
    assert status_of(payload) == "2000"
    assert await asyncio.to_thread(c.proc.wait, 300) == 0
    status, body = await get_json(http, on(b, session["result_url"]), session["session_token"])
    assert status == 200 and body == payload


async def test_a_killed_replica_loses_its_running_session_within_the_heartbeat_ttl(
        http, replicas, frames, redis):
    a, b = replicas[:2]
    await idle(redis, replicas[:2])  # C drained and left in the test before
    session = await new_session(http, a, challenges=0, ttl=60)
    assert owner_of(session, replicas) is a
    client = await streaming(http, session, frames, seen_from=b)
    a.send(signal.SIGKILL)
    killed = time.monotonic()
    answers: list[tuple[int, dict]] = []

    async def lost() -> bool:
        answers.append(await get_json(http, on(b, session["result_url"]),
                                      session["session_token"]))
        return answers[-1][0] != 202

    await until(lost, "the session lost", timeout=120)
    status, body = answers[-1]
    lost_after = time.monotonic() - killed
    await client.hang_up()
    assert status == 410 and status_of(body) == "4101", body
    assert body["messageString"]["value"] == "session lost" and body["infoList"] == []
    # the last heartbeat was at most one interval before the kill: lost one TTL after
    # it (the slack is for a poll answered late on a loaded machine, not the rule)
    assert lost_after <= HEARTBEAT_TTL_S + 3.0, lost_after
    # every replica now answers the same, and a WHIP request is not redirected to it
    async with http.post(on(b, session["whip_url"]), data="v=0\r\n", allow_redirects=False,
                         headers={"Content-Type": "application/sdp",
                                  "Authorization": f"Bearer {session['session_token']}"}
                         ) as resp:
        assert resp.status == 410 and status_of(await resp.json()) == "4101"
