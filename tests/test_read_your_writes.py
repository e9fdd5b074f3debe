"""A replica announces nothing the others cannot see yet (issue 20: read-your-writes).

One service in this process shares a real redis-server (its own key prefix). When the
session directory cannot be written, a creation answers 5030 and leaves nothing
behind: no session, no quota counted, no placement slot taken. When it can, the
record is in Redis by the time the 201 arrives, and a session ended by DELETE is
"ended" there, its slot free, by the time the 200 arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
from conftest import KEY, SECRET, make_config, start_server, status_of

from service.cluster.shared_state.redis import RedisState
from service.rtc.routes import MANAGER
from testing.replicas import REDIS_SERVER, RedisServer, free_port, redis_server
from testing.rtc_client import create_session

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed "
                                "(scripts/install-system-packages.sh)")
PREFIX = "ryw:"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest_asyncio.fixture(scope="module")
async def service(redis) -> AsyncIterator[tuple[str, object]]:
    config = make_config(redis_url=redis.url, replicas__secret="s",
                         replicas__key_prefix=PREFIX)
    server = await start_server(config)
    yield str(server.make_url("")).rstrip("/"), server.app
    await server.close()


def stored(redis: RedisServer, *args: str) -> str:
    return redis.command(*args).decode().strip()


async def test_a_creation_whose_record_cannot_be_written_answers_5030_and_leaves_nothing(
        service, redis):
    base, app = service
    manager = app[MANAGER]
    shared = manager.shared
    # the directory's store is unreachable (a real client of a port nothing listens
    # on) while the quota and the slots, in the same Redis, still work
    dead = RedisState(f"redis://127.0.0.1:{free_port()}/0", PREFIX, timeout_s=0.5)
    shared.put_sessions = dead.put_sessions
    try:
        async with aiohttp.ClientSession() as http:
            status, body = await create_session(http, base, KEY, SECRET, challenges=0)
    finally:
        del shared.put_sessions
        await dead.close()
    assert status == 503 and status_of(body) == "5030", body
    assert manager.store.sessions == {}  # no half-created session
    assert stored(redis, "ZCARD", f"{PREFIX}quota:{KEY}") == "0"  # the quota given back
    assert stored(redis, "ZCARD", f"{PREFIX}slots:{manager.replica.id}") == "0"
    await manager.directory.flush()  # and nothing left to be written later
    assert stored(redis, "KEYS", f"{PREFIX}session:*") == ""


async def test_the_record_is_stored_before_201_and_the_end_before_200(service, redis):
    base, app = service
    replica_id = app[MANAGER].replica.id
    async with aiohttp.ClientSession() as http:
        status, session = await create_session(http, base, KEY, SECRET, challenges=0)
        assert status == 201, session
        key = f"{PREFIX}session:{session['session_id']}"
        # read at once, nothing waited for: the 201 came after the write
        assert stored(redis, "HGET", key, "state") == "created"
        assert stored(redis, "ZCARD", f"{PREFIX}slots:{replica_id}") == "1"
        # its URLs name the public URL (none configured here): the same path on ours
        whip = base + "/v1/" + session["whip_url"].split("/v1/", 1)[1]
        async with http.delete(whip, headers={
                "Authorization": f"Bearer {session['session_token']}"}) as resp:
            assert resp.status == 200
        assert stored(redis, "HGET", key, "state") == "ended"
        assert stored(redis, "ZCARD", f"{PREFIX}slots:{replica_id}") == "0"
