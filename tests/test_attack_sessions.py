"""A short run of bench/attack_sessions.py: attacks fail, prompt-following people pass.

The same scenario code as the bench (real aiortc peers and FFmpeg's WHIP muxer over
loopback, real clips from shared/data), a few sessions each against an in-process
server; the bench runs hundreds and reports APCER / BPCER with intervals. The attacks'
sessions, SESSIONS_AT_ONCE at a time, start together as the module begins (the `attacks`
fixture) and each test reads and checks its own; the honest people stream after them,
alone: their timed challenges leave no margin for a 2-core machine shared with attacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

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


# Each attack test's sessions, by the test's name: (scenario, one session per challenge set,
# pool), in the order the sessions start.
RUNS: dict[str, list[tuple[str, list[str | None], str]]] = {
    "test_looped_replays_fail": [("loop_blink", [None, "eyes_closed"], scenarios.POOLS[0])],
    "test_action_reels_fail": [
        ("action_reel", [None, "mouth_open"], scenarios.POOLS[1]),
        ("action_reel_asked", ["eyes_closed"], scenarios.POOLS[1]),
    ],
    "test_ffmpeg_injection_without_a_prompt_reader_fails": [
        ("ffmpeg", ["eyes_closed"], scenarios.POOLS[0])],
}


async def run(servers, http, gate: asyncio.Semaphore,
              runs: list[tuple[str, list[str | None], str]]) -> list[scenarios.Outcome]:
    """Sessions of bench scenarios, one per challenge set, each when `gate` lets it."""
    default, kiosk = (str(s.make_url("")).rstrip("/") for s in servers)

    async def one(scenario: str, pool: str, index: int, chosen: str | None
                  ) -> scenarios.Outcome:
        ctx = scenarios.Context(default, http, seed=11, key=KEY, secret=SECRET,
                                kiosk_url=kiosk, pool=pool)
        runner = next(s for s in scenarios.SCENARIOS if s.name == scenario).run
        async with gate:
            return await runner(ctx, index, chosen)
    return await asyncio.gather(*(one(scenario, pool, i, c) for scenario, challenges, pool
                                  in runs for i, c in enumerate(challenges)))


@pytest_asyncio.fixture(scope="module")
async def attacks(request, servers, http) -> AsyncIterator[dict[str, Any]]:
    """The selected attack tests' sessions, started at once, SESSIONS_AT_ONCE at a time."""
    selected = {item.name for item in request.session.items if item.module is request.module}
    if scenarios.ffmpeg_exe() is None:
        selected.discard("test_ffmpeg_injection_without_a_prompt_reader_fails")
    gate = asyncio.Semaphore(SESSIONS_AT_ONCE)
    tasks = {name: asyncio.create_task(run(servers, http, gate, runs), name=name)
             for name, runs in RUNS.items() if name in selected}
    yield tasks
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_looped_replays_fail(attacks):
    """A real blinking person's clip, looped: whatever the set, it cannot know when the
    prompt comes or how long to hold."""
    got = await attacks["test_looped_replays_fail"]
    assert [o.passed for o in got] == [False, False], got
    assert all("challenges not met" in o.reason for o in got)


async def test_action_reels_fail(attacks):
    """One person's reel of eyes shut and mouth wide open (each held 1.5 s, ~2 s apart),
    and a reel of the asked action alone: they act in the pauses and hold for their own
    time, and the completed set asks an action they cannot foresee."""
    got = await attacks["test_action_reels_fail"]
    assert [o.passed for o in got] == [False, False, False], got


async def test_prompt_following_people_pass(servers, http, attacks):
    """The default set (no turns on that service) and a legacy blink, completed."""
    if attacks:  # the people stream once the attacks are over
        await asyncio.wait(attacks.values())
    got = await run(servers, http, asyncio.Semaphore(SESSIONS_AT_ONCE),
                    [("honest", [None, "blink"], scenarios.POOLS[1])])
    assert [o.passed for o in got] == [True, True], got
    assert all(o.seconds is not None and o.seconds > 0 for o in got)


async def test_ffmpeg_injection_without_a_prompt_reader_fails(attacks):
    """FFmpeg's WHIP muxer pushes a recording (no data channel) and nobody reads the
    events stream: the prompts reached no one."""
    if scenarios.ffmpeg_exe() is None:
        pytest.skip("no FFmpeg with the WHIP muxer (the imageio-ffmpeg package)")
    (outcome,) = await attacks["test_ffmpeg_injection_without_a_prompt_reader_fails"]
    assert not outcome.passed and "challenges not delivered" in outcome.reason
