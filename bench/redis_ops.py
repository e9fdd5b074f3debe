"""Redis operations per streaming session, with two replicas sharing one Redis.

Starts a redis-server and two `python -m service` replicas on loopback (testing/replicas.py),
then runs `--sessions` sessions one after another, each created on replica A (so some
are forwarded to B), streamed by a real aiortc client (a live clip, no challenges),
its result read once from the other replica. Redis's own counters (INFO commandstats)
are read before and after; heartbeats (each replica every heartbeat_interval_s) are
measured separately over an idle period and subtracted. Prints a Markdown table.

    .venv/bin/python bench/redis_ops.py [--sessions 4]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from pathlib import Path

import aiohttp

from testing.replicas import KEY, SECRET, RedisServer, redis_server, replica_set
from testing.rtc_client import ClipTrack, WhipClient, create_session
from testing.videos import decode_all

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def command_calls(redis: RedisServer) -> dict[str, int]:
    text = redis.command("INFO", "commandstats").decode()
    return {m[1]: int(m[2]) for m in re.finditer(r"cmdstat_([a-z|]+):calls=(\d+)", text)
            if m[1] != "info"}  # our own reading


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


async def one_session(http: aiohttp.ClientSession, urls: list[str], frames: list) -> None:
    status, session = await create_session(http, urls[0], KEY, SECRET, challenges=0)
    assert status == 201, session
    client = WhipClient(session, http)
    assert await client.connect(ClipTrack(frames, fps=15)) == 201
    try:
        await asyncio.wait_for(client.result, 60)
    finally:
        await client.hang_up()
    other = next(u for u in urls if not session["result_url"].startswith(u))
    result_url = session["result_url"].replace(session["result_url"].split("/v1/")[0], other)
    async with http.get(result_url, headers={
            "Authorization": f"Bearer {session['session_token']}"}) as resp:
        assert resp.status == 200


async def measure(redis: RedisServer, urls: list[str], sessions: int, idle_s: float
                  ) -> tuple[dict[str, int], dict[str, int], float]:
    frames = decode_all((DATA / "blink/zju/000001M_FBN.mp4").read_bytes())
    start = command_calls(redis)
    await asyncio.sleep(idle_s)
    idle = delta(command_calls(redis), start)
    before, t0 = command_calls(redis), time.monotonic()
    async with aiohttp.ClientSession() as http:
        for _ in range(sessions):
            await one_session(http, urls, frames)
    return idle, delta(command_calls(redis), before), time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--idle", type=float, default=10.0, help="heartbeat baseline (s)")
    args = parser.parse_args()
    with redis_server() as redis, replica_set(redis.url, 2, SESSIONS__OBSERVATION_S="3",
                                              REPLICAS__CAPACITY="1") as replicas:
        idle, run, seconds = asyncio.run(
            measure(redis, [r.url for r in replicas], args.sessions, args.idle))
    per_s = {k: v / args.idle for k, v in idle.items()}
    print(f"Redis commands per session ({args.sessions} sessions, 2 replicas, "
          f"{seconds:.1f} s; heartbeats subtracted)\n")
    print("| command | calls | per session |\n|---|---:|---:|")
    total = 0.0
    for name in sorted(run):
        calls = run[name] - per_s.get(name, 0.0) * seconds
        total += max(calls, 0.0)
        print(f"| {name} | {run[name]} | {max(calls, 0.0) / args.sessions:.1f} |")
    print(f"| **all** | {sum(run.values())} | **{total / args.sessions:.1f}** |")
    print(f"\nHeartbeats, idle: {sum(per_s.values()):.1f} commands/s for 2 replicas")


if __name__ == "__main__":
    main()
