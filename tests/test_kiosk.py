"""The README's kiosk recipe, run for real: FFmpeg's WHIP muxer pushes a camera and
scripts/kiosk_prompts.py shows the prompts from the session's events stream.

A kiosk pushes its V4L2 camera; here FFmpeg (the build of the pinned imageio-ffmpeg
package, with `-f whip`) pushes a live clip from shared/data, looped in real time, with
the recipe's encoder settings. FFmpeg answers no ICE consent checks once connected
(RFC 7675), which used to end every such session after ~30 s (service/rtc/aiortc_internals/consent.py).
That test runs the service's consent rule on a short clock (1 s x 3 checks instead of
aioice's 5 s x 6): the rule does not depend on the clock, and the session outlives the
expiry in seconds rather than in half a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import DATA, KEY, ROOT, SECRET, make_config, start_server

from service.rtc import peer
from service.rtc.aiortc_internals.consent import tolerate_push_only_peers
from testing.attack_scenarios import ffmpeg_exe
from testing.rtc_client import WhipClient, create_session

# A live person blinking three times in 5 s (labels.json), no glasses.
LIVE_CLIP = DATA / "blink" / "zju" / "000001M_FNN.mp4"
PROMPTS_SCRIPT = ROOT / "scripts" / "kiosk_prompts.py"
# The consent clock of the long session: a check every ~1 s, closed after 3 unanswered
# in a row. Each check waits 0.8-1.2 x the interval, then aioice's 0.5 s for the answer
# (no retransmission), so a peer that never answers would be closed within EXPIRY_S.
CONSENT_INTERVAL_S, CONSENT_FAILURES = 1.0, 3
EXPIRY_S = CONSENT_FAILURES * (1.2 * CONSENT_INTERVAL_S + 0.5)
# The long session: past that expiry with margin (twice over).
LONG_OBSERVATION_S = 2 * EXPIRY_S
RESULT_TIMEOUT_S = 90.0


def kiosk_ffmpeg(exe: str, session: dict) -> list[str]:
    """The README recipe's command, with the clip looped in real time instead of
    `-f v4l2 -i /dev/video0`; bounded by -t so nothing outlives the test."""
    return [exe, "-hide_banner", "-loglevel", "error",
            "-re", "-stream_loop", "-1", "-i", str(LIVE_CLIP), "-t", str(RESULT_TIMEOUT_S),
            "-an", "-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency",
            "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p",
            "-f", "whip", "-authorization", session["session_token"], session["whip_url"]]


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    exe = ffmpeg_exe()
    if exe is None:
        pytest.skip("no FFmpeg with the WHIP muxer (the imageio-ffmpeg package of the test extra)")
    return exe


@contextlib.asynccontextmanager
async def pushing(exe: str, session: dict) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *kiosk_ffmpeg(exe, session), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.communicate(), 10)


async def new_session(http, url: str, **fields) -> dict:
    status, session = await create_session(http, url, KEY, SECRET, **fields)
    assert status == 201, session
    return session


async def decision(http, session: dict) -> dict:
    status, payload = await WhipClient(session, http).poll_result(timeout=RESULT_TIMEOUT_S)
    assert status == 200, payload
    return payload


def live_or_not(payload: dict) -> str:
    items = {i["desc"]: i["content"] for i in payload["infoList"][0]["veritem"]}
    return items["Live or not"]


async def test_kiosk_without_challenges_is_decided_living_body(ffmpeg, server, http):
    url = str(server.make_url("")).rstrip("/")
    session = await new_session(http, url, challenges=0)
    async with pushing(ffmpeg, session):
        payload = await decision(http, session)
    assert live_or_not(payload) == "Living body", payload["detail"]
    assert payload["detail"]["ended_by"] == "observation time done"


async def test_kiosk_screen_shows_every_prompt_and_the_clip_is_refused(
        ffmpeg, server, http, tmp_path):
    """The screen (the recipe's script) is attached before the camera starts, so every
    prompt is delivered; the clip does not follow them, so the session is refused for
    unmet challenges, not for undelivered ones."""
    url = str(server.make_url("")).rstrip("/")
    session = await new_session(http, url, challenges=3)
    session_file = tmp_path / "session.json"
    session_file.write_text(json.dumps(session))
    screen = await asyncio.create_subprocess_exec(
        sys.executable, str(PROMPTS_SCRIPT), str(session_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        first = await asyncio.wait_for(screen.stdout.readline(), 20)
        assert b"Look at the camera" in first  # attached: prompts now count as delivered
        async with pushing(ffmpeg, session):
            out, err = await asyncio.wait_for(screen.communicate(), RESULT_TIMEOUT_S)
    finally:
        if screen.returncode is None:
            screen.kill()
            await screen.wait()
    payload = await decision(http, session)
    lines = out.decode().splitlines()
    assert screen.returncode == 1, (lines, err.decode())  # 1: not a living body
    assert live_or_not(payload) == "Non-living body"
    detail = payload["detail"]
    assert "challenges not met" in detail["reasons"], detail["reasons"]
    sent = detail["challenge_delivery"]  # one entry per prompt the service sent
    assert sent and all(d["events_subscribers"] >= 1 for d in sent), sent
    prompts = [line for line in lines if line.startswith("[")]
    assert len(prompts) == len(sent), lines
    assert all(line.startswith(f"[{i + 1}/3] ") for i, line in enumerate(prompts)), lines
    assert lines[-1].startswith("Result: Non-living body"), lines


@pytest_asyncio.fixture(scope="module")
async def long_server() -> AsyncIterator:
    """Sessions without challenges watch the face for LONG_OBSERVATION_S, not 7 s."""
    server = await start_server(make_config(sessions__observation_s=LONG_OBSERVATION_S))
    yield server
    await server.close()


async def test_kiosk_session_outlives_ice_consent_expiry(ffmpeg, long_server, http,
                                                        monkeypatch):
    """A push-only FFmpeg session past the consent expiry is still connected and decided
    on its observation time, not ended as "peer disconnected" by the consent checks
    FFmpeg never answers."""
    monkeypatch.setattr(peer, "tolerate_push_only_peers", functools.partial(
        tolerate_push_only_peers, interval_s=CONSENT_INTERVAL_S,
        max_failures=CONSENT_FAILURES))
    url = str(long_server.make_url("")).rstrip("/")
    session = await new_session(http, url, challenges=0, ttl=120)
    async with pushing(ffmpeg, session):
        payload = await decision(http, session)
    detail = payload["detail"]
    assert detail["ended_by"] == "observation time done", detail
    assert detail["stream_seconds"] > LONG_OBSERVATION_S
    assert live_or_not(payload) == "Living body", detail
