"""A short run of bench/attack_sessions.py: attacks fail, prompt-following people pass.

The same scenario code as the bench (real aiortc peers and FFmpeg's WHIP muxer over
loopback, real clips from shared/data), a few sessions each against an in-process
server; the bench runs hundreds and reports APCER / BPCER with intervals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import KEY, SECRET, make_config, start_server

from testing import attack_scenarios as scenarios

SESSIONS_AT_ONCE = 3  # bounded load on a 2-core runner: the sessions run in real time


@pytest_asyncio.fixture(scope="module")
async def servers() -> AsyncIterator:
    """The default service and one without head turns (the simulated people cannot
    turn), as the bench runs them."""
    settings = {"sessions__max_active": SESSIONS_AT_ONCE + 2,
                "sessions__media_timeout_s": 4.0}
    default = await start_server(make_config(**settings))
    kiosk = await start_server(make_config(
        **settings, sessions__challenges__actions=scenarios.KIOSK_ACTIONS))
    yield default, kiosk
    await kiosk.close()
    await default.close()


async def run(servers, http, scenario: str, challenges: list[str | None],
              pool: str = scenarios.POOLS[0]) -> list[scenarios.Outcome]:
    """Sessions of one bench scenario, one per challenge set, SESSIONS_AT_ONCE at a time."""
    default, kiosk = (str(s.make_url("")).rstrip("/") for s in servers)
    ctx = scenarios.Context(default, http, seed=11, key=KEY, secret=SECRET, kiosk_url=kiosk,
                        pool=pool)
    runner = next(s for s in scenarios.SCENARIOS if s.name == scenario).run
    gate = asyncio.Semaphore(SESSIONS_AT_ONCE)

    async def one(index: int, chosen: str | None) -> scenarios.Outcome:
        async with gate:
            return await runner(ctx, index, chosen)
    return await asyncio.gather(*(one(i, c) for i, c in enumerate(challenges)))


async def test_looped_replays_fail(servers, http):
    """A real blinking person's clip, looped: whatever the set, it cannot know when the
    prompt comes or how long to hold."""
    outcomes = await run(servers, http, "loop_blink", [None, "eyes_closed"])
    assert [o.passed for o in outcomes] == [False, False], outcomes
    assert all("challenges not met" in o.reason for o in outcomes)


async def test_action_reels_fail(servers, http):
    """One person's reel of eyes shut and mouth wide open (each held 1.5 s, ~2 s apart),
    and a reel of the asked action alone: they act in the pauses and hold for their own
    time, and the completed set asks an action they cannot foresee."""
    outcomes = await run(servers, http, "action_reel", [None, "mouth_open"],
                         pool=scenarios.POOLS[1])
    outcomes += await run(servers, http, "action_reel_asked", ["eyes_closed"],
                          pool=scenarios.POOLS[1])
    assert [o.passed for o in outcomes] == [False, False, False], outcomes


async def test_prompt_following_people_pass(servers, http):
    """The default set (no turns on that service) and a legacy blink, completed."""
    outcomes = await run(servers, http, "honest", [None, "blink"], pool=scenarios.POOLS[1])
    assert [o.passed for o in outcomes] == [True, True], outcomes
    assert all(o.seconds is not None and o.seconds > 0 for o in outcomes)


async def test_ffmpeg_injection_without_a_prompt_reader_fails(servers, http):
    """FFmpeg's WHIP muxer pushes a recording (no data channel) and nobody reads the
    events stream: the prompts reached no one."""
    if scenarios.ffmpeg_exe() is None:
        pytest.skip("no FFmpeg with the WHIP muxer (the imageio-ffmpeg package)")
    (outcome,) = await run(servers, http, "ffmpeg", ["eyes_closed"])
    assert not outcome.passed and "challenges not delivered" in outcome.reason
