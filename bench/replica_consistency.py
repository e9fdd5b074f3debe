"""Two replicas that agree at once (issue 20): read-your-writes and placement, measured.

Starts a redis-server and two `python -m service` replicas A and B on loopback
(testing/replicas.py), then:

1. creation: `--creations` sessions created through A in pairs (the first stays on A,
   the second is placed on B and forwarded), each timed from the client (POST to
   201), and right after each 201 its WHIP offer is sent to the replica that does not
   own it, as a load balancer might: it must answer 307 to the owner. Both sessions
   are then ended (DELETE, which frees their slots before answering).
2. the Redis writes read-your-writes puts on the creation path, timed alone against
   the same redis-server: the directory record (HSET + PEXPIRE) and the slot
   reservation (one Lua script).
3. results: `--results` sessions streamed (a live clip, no challenges,
   `--concurrency` at once), created through A; as soon as the client has its
   `result` on the data channel, the result is read from the other replica: it must
   be 200, never 202 pending.
4. bursts: `--bursts` times, 16 sessions created at once through A; how many each
   replica got (the rule says 8 and 8).

    .venv/bin/python bench/replica_consistency.py [--creations 200 --results 50 --bursts 5]
        [--parts creation,writes,results,bursts]

(`--parts creation` also runs against an older checkout of service/, for the latency
before read-your-writes.)

Prints a Markdown summary. The machine is shared: latencies are of that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import time
from pathlib import Path

import aiohttp
import numpy as np

from service.cluster.shared_state import ReplicaInfo, SessionRecord
from service.cluster.shared_state.redis import RedisState
from testing.replicas import KEY, SECRET, RedisServer, redis_server, replica_set
from testing.rtc_client import ClipTrack, WhipClient, create_session
from testing.videos import decode_all

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared")) / "data"
CLIP = "blink/zju/000001M_FBN.mp4"
BURST = 16
SETTINGS = {"REPLICAS__CAPACITY": str(BURST), "SESSIONS__PER_KEY_PER_MINUTE": "100000",
            "SESSIONS__OBSERVATION_S": "3"}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def on(url: str, base: str) -> str:
    """The same path on another replica."""
    return re.sub(r"^http://[^/]+", base, url)


def owner(session: dict, urls: list[str]) -> str:
    return next(u for u in urls if session["whip_url"].startswith(u + "/"))


async def delete(http: aiohttp.ClientSession, session: dict) -> None:
    async with http.delete(session["whip_url"], headers={
            "Authorization": f"Bearer {session['session_token']}"}) as resp:
        assert resp.status == 200, resp.status


async def creations(http: aiohttp.ClientSession, urls: list[str], n: int
                    ) -> tuple[dict[str, list[float]], dict[int, int]]:
    """Creation latencies (ms) by where the session went, offers' answers by status."""
    latency: dict[str, list[float]] = {"kept on A": [], "forwarded to B": []}
    answers: dict[int, int] = {}
    for _ in range(n // 2):
        pair = []
        for _ in range(2):
            t0 = time.perf_counter()
            status, session = await create_session(http, urls[0], KEY, SECRET, challenges=0)
            ms = 1000 * (time.perf_counter() - t0)
            assert status == 201, session
            where = owner(session, urls)
            latency["kept on A" if where == urls[0] else "forwarded to B"].append(ms)
            other = next(u for u in urls if u != where)
            async with http.post(on(session["whip_url"], other), data="v=0\r\n",
                                 allow_redirects=False, headers={
                                     "Content-Type": "application/sdp",
                                     "Authorization": f"Bearer {session['session_token']}"}
                                 ) as resp:
                answers[resp.status] = answers.get(resp.status, 0) + 1
            pair.append(session)
        for session in pair:
            await delete(http, session)
    return latency, answers


async def store_writes(redis: RedisServer, n: int) -> dict[str, list[float]]:
    """The writes a creation now waits for, alone: ms per call."""
    state = RedisState(redis.url, f"bench-{secrets.token_hex(4)}:", timeout_s=1.0)
    me = ReplicaInfo(id="a", url="http://a", active=0, capacity=n + 1)
    other = ReplicaInfo(id="b", url="http://b", active=0, capacity=n + 1)
    out: dict[str, list[float]] = {"directory record": [], "slot reservation": []}
    try:
        for i in range(n):
            record = SessionRecord(id=f"s{i}", owner_id="a", owner_url="http://a", key=KEY,
                                   token_sha256="ab" * 32, state="created",
                                   expires_at=time.time() + 120)
            t0 = time.perf_counter()
            await state.put_sessions([(record, 60.0)])
            t1 = time.perf_counter()
            await state.reserve_slot([me, other], "a", f"slot{i}", 30.0)
            t2 = time.perf_counter()
            out["directory record"].append(1000 * (t1 - t0))
            out["slot reservation"].append(1000 * (t2 - t1))
    finally:
        await state.close()
    return out


async def results(http: aiohttp.ClientSession, urls: list[str], n: int, concurrency: int,
                  frames: list) -> dict[int, int]:
    """Status of the result read from the other replica right after `result` (0: the
    session gave no result in time, a loaded machine)."""
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            status, session = await create_session(http, urls[0], KEY, SECRET, challenges=0)
            assert status == 201, session
            client = WhipClient(session, http)
            assert await client.connect(ClipTrack(frames, fps=15)) == 201
            try:
                try:
                    await asyncio.wait_for(client.result, 180)
                except TimeoutError:
                    statuses[0] = statuses.get(0, 0) + 1  # no result: not counted as read
                    return
                other = next(u for u in urls if u != owner(session, urls))
                async with http.get(on(session["result_url"], other), headers={
                        "Authorization": f"Bearer {session['session_token']}"}) as resp:
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
            finally:
                await client.hang_up()

    await asyncio.gather(*(one() for _ in range(n)))
    return statuses


async def bursts(http: aiohttp.ClientSession, urls: list[str], n: int) -> list[list[int]]:
    """Per burst, sessions placed on A and on B."""
    splits = []
    for _ in range(n):
        answers = await asyncio.gather(*(create_session(http, urls[0], KEY, SECRET,
                                                        challenges=0) for _ in range(BURST)))
        assert all(status == 201 for status, _ in answers), answers
        owners = [owner(body, urls) for _, body in answers]
        splits.append([owners.count(u) for u in urls])
        for _, body in answers:
            await delete(http, body)
    return splits


def line(name: str, values: list[float]) -> str:
    return (f"| {name} | {len(values)} | {statistics.median(values):.1f} | "
            f"{pct(values, 99):.1f} |")


async def run(redis: RedisServer, urls: list[str], args: argparse.Namespace,
              frames: list) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    parts = set(args.parts.split(","))
    async with aiohttp.ClientSession(timeout=timeout) as http:
        if "creation" in parts:
            latency, offers = await creations(http, urls, args.creations)
            print("Session creation through A, from the client (ms; two replicas, Redis "
                  "on loopback)\n")
            print("| path | sessions | p50 | p99 |\n|---|---:|---:|---:|")
            for name, values in latency.items():
                print(line(name, values))
            others = {k: v for k, v in offers.items() if k != 307}
            print(f"\nOffers to the non-owner right after 201: {offers.get(307, 0)} of "
                  f"{sum(offers.values())} answered 307; others: {others}\n")
        if "writes" in parts:
            writes = await store_writes(redis, 1000)
            print("What a creation now waits for, alone against the same Redis (ms)\n")
            print("| write | calls | p50 | p99 |\n|---|---:|---:|---:|")
            for name, values in writes.items():
                print(line(name, values))
            print()
        if "results" in parts:
            got = await results(http, urls, args.results, args.concurrency, frames)
            others = {k: v for k, v in got.items() if k not in (200, 202)}
            print(f"Results read from the other replica right after `result`: "
                  f"{got.get(200, 0)} of {sum(got.values())} answered 200, "
                  f"{got.get(202, 0)} pending (202); others: {others}")
        if "bursts" in parts:
            splits = await bursts(http, urls, args.bursts)
            print(f"Bursts of {BURST} through A (A/B): "
                  + ", ".join(f"{a}/{b}" for a, b in splits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creations", type=int, default=200)
    parser.add_argument("--results", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--parts", default="creation,writes,results,bursts",
                        help="comma-separated: creation, writes, results, bursts")
    args = parser.parse_args()
    frames = decode_all((DATA / CLIP).read_bytes())
    with redis_server() as redis, replica_set(redis.url, 2, **SETTINGS) as replicas:
        asyncio.run(run(redis, [r.url for r in replicas], args, frames))


if __name__ == "__main__":
    main()
