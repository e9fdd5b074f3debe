"""A short run of bench/attack_sessions.py: attacks fail, prompt-following people pass.

The same scenario code as the bench (real aiortc peers and FFmpeg's WHIP muxer over
loopback, real clips from shared/data), a few sessions each against an in-process
server; the bench runs hundreds and reports APCER / BPCER with intervals.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import KEY, SECRET, make_config, start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import attack_sessions as bench  # noqa: E402

SESSIONS_AT_ONCE = 3  # bounded load on a 2-core runner: the sessions run in real time


@pytest_asyncio.fixture(scope="module")
async def server() -> AsyncIterator:
    server = await start_server(make_config(
        sessions__max_active=SESSIONS_AT_ONCE + 2, sessions__media_timeout_s=4.0))
    yield server
    await server.close()


async def run(server, http, scenario: str, challenges: list[str | None]
              ) -> list[bench.Outcome]:
    """Sessions of one bench scenario, one per challenge set, SESSIONS_AT_ONCE at a time."""
    ctx = bench.Context(str(server.make_url("")).rstrip("/"), http, seed=11,
                        key=KEY, secret=SECRET)
    runner = next(s for s in bench.SCENARIOS if s.name == scenario).run
    gate = asyncio.Semaphore(SESSIONS_AT_ONCE)

    async def one(index: int, chosen: str | None) -> bench.Outcome:
        async with gate:
            return await runner(ctx, index, chosen)
    return await asyncio.gather(*(one(i, c) for i, c in enumerate(challenges)))


async def test_looped_replays_fail(server, http):
    """A real blinking person's clip, looped: whatever the set, it cannot know when the
    prompt comes or how long to hold."""
    outcomes = await run(server, http, "loop_blink", [None, "eyes_closed"])
    assert [o.passed for o in outcomes] == [False, False], outcomes
    assert all("challenges not met" in o.reason for o in outcomes)


async def test_action_reels_fail(server, http):
    """A reel doing the asked action over and over (eyes shut ~1.5 s every ~2.5 s, or the
    mouth wide open) does it in the pauses and holds it for its own time, not the one
    the service picks: three prompts of its own action are not all met."""
    outcomes = await run(server, http, "action_reel",
                         ["eyes_closed,eyes_closed,eyes_closed",
                          "mouth_open,mouth_open,mouth_open"])
    assert [o.passed for o in outcomes] == [False, False], outcomes


async def test_prompt_following_people_pass(server, http):
    outcomes = await run(server, http, "honest", ["eyes_closed", "mouth_open"])
    assert [o.passed for o in outcomes] == [True, True], outcomes
    assert all(o.seconds is not None and o.seconds > 0 for o in outcomes)


async def test_ffmpeg_injection_without_a_prompt_reader_fails(server, http):
    """FFmpeg's WHIP muxer pushes a recording (no data channel) and nobody reads the
    events stream: the prompts reached no one."""
    if bench.ffmpeg_exe() is None:
        pytest.skip("no FFmpeg with the WHIP muxer (the imageio-ffmpeg package)")
    (outcome,) = await run(server, http, "ffmpeg", ["eyes_closed"])
    assert not outcome.passed and "challenges not delivered" in outcome.reason
