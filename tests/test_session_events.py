"""The events stream (GET /v1/sessions/{id}/events) and prompt deliverability (spec 2.1).

Real aiortc clients stream real clips over loopback; the events stream is read with a
plain HTTP client, as a screen paired with a push-only WHIP client (FFmpeg, OBS) would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import KEY, SECRET, data_bytes, make_config, start_server, status_of

from service.errors import RateLimited
from service.rtc import messages as msg
from service.rtc.outbox import Outbox, OutboxSettings
from service.rtc.routes import MANAGER
from testing.rtc_client import ActingTrack, EventStream, WhipClient, create_session, performance
from testing.videos import decode_all

BLINK_CLIP = "blink/zju/000001M_FBN.mp4"
# labels.json: BLINK_CLIP's first blink; its shut frames, where the service's landmarks
# give a lid gap of 0.49-0.57 of the open one
BLINK, SHUT = (35, 51), (37, 39)


@pytest_asyncio.fixture(scope="module")
async def events_server() -> AsyncIterator:
    server = await start_server(make_config(
        sessions__media_timeout_s=4.0, sessions__max_active=4, sessions__ttl_s=40.0,
        sessions__events__heartbeat_s=0.3,
        # each test asks exactly the challenges it names (completion: test_challenges.py)
        sessions__challenges__min_holds=0, sessions__challenges__min_kinds=0,
        # far shorter than any stream here: the HTTP layer's header and body deadlines
        # must not cut a response the app is still writing
        http__header_timeout_s=1.0, http__body_timeout_s=1.0))
    yield server
    await server.close()


@pytest.fixture
def url(events_server) -> str:
    return str(events_server.make_url("")).rstrip("/")


@pytest.fixture(scope="module")
def frames() -> list:
    return decode_all(data_bytes(BLINK_CLIP))


def acting_track(frames: list, seed: int) -> ActingTrack:
    """A person who closes the eyes when asked (the shut frames of a labelled blink);
    neutral: the open-eyed stretch between the clip's first two blinks."""
    return ActingTrack(frames[60:82], {"eyes_closed": performance(frames, BLINK, SHUT)},
                       seed=seed)


def test_messages_have_the_spec_shapes():
    """One encoding for the data channel and the events stream, in spec 2.1's shape (the
    challenge script's events: tests/test_challenges.py)."""
    assert msg.to_json(msg.Challenge("eyes_closed", 0, 3, 2500)) == {
        "type": "challenge", "action": "eyes_closed", "index": 0, "total": 3,
        "window_ms": 2500}
    assert msg.to_json(msg.Release("eyes_closed", 0)) == {
        "type": "release", "action": "eyes_closed", "index": 0}
    assert msg.to_json(msg.ChallengeFailed("mouth_open", 1, "not_delivered")) == {
        "type": "challenge_failed", "action": "mouth_open", "index": 1,
        "reason": "not_delivered"}
    assert msg.to_json(msg.Progress(("too far",), 1)) == {
        "type": "progress", "hints": ["too far"], "faces": 1}
    assert msg.to_json(msg.Deciding()) == {"type": "deciding"}
    assert json.loads(msg.encode(msg.Result({"infoList": []}))) == {
        "type": "result", "payload": {"infoList": []}}
    assert "\n" not in msg.encode(msg.Result({"text": "two\nlines"}))
    with pytest.raises(ValueError):
        msg.ChallengeFailed("blink", 0, "tired")


async def test_outbox_bounds_subscribers_queues_and_backlog():
    box = Outbox(OutboxSettings(max_subscribers=2, queue=3, backlog=2))
    assert not box.send(msg.Deciding()).reached  # no data channel, nobody subscribed
    box.send(msg.Progress(("hold still",), 1))
    box.send(msg.Challenge("eyes_closed", 0, 1, 2500))
    late = box.subscribe()  # receives the last `backlog` messages first
    assert [json.loads(await late.next(1))["type"] for _ in range(2)] == [
        "progress", "challenge"]
    slow = box.subscribe()  # primed with the same two: one free slot left
    with pytest.raises(RateLimited):
        box.subscribe()
    assert box.send(msg.Release("eyes_closed", 0)).subscribers == 2
    # `slow` is now 3 behind: the next message drops it (its stream ends at once)
    assert box.send(msg.ChallengeMet("eyes_closed", 0)).subscribers == 1
    assert await slow.next(1) is None and box.subscribers == [late]
    box.close()  # `late` gets what it was sent, then the end
    assert [json.loads(await late.next(1))["type"] for _ in range(2)] == [
        "release", "challenge_met"]
    assert await late.next(1) is None
    after = box.subscribe()  # attaching after the end: the backlog, then the end
    assert [await after.next(1) is not None for _ in range(3)] == [True, True, False]


def reasons(payload: dict) -> list[str]:
    assert status_of(payload) == "2000", payload["messageString"]
    return payload["detail"]["reasons"]


async def test_events_stream_carries_every_message_and_ends_after_result(http, url, frames):
    _, session = await create_session(http, url, KEY, SECRET, challenges="eyes_closed")
    stream = EventStream(session, http)
    reader = asyncio.create_task(stream.read())
    await asyncio.wait_for(stream.attached.wait(), 10)
    client = WhipClient(session, http)
    track = acting_track(frames, seed=1)
    client.listeners.append(track.on_message)
    assert await client.connect(track) == 201
    try:
        payload = await asyncio.wait_for(client.result, 60)
        await asyncio.wait_for(reader, 30)
    finally:
        await client.hang_up()
    assert stream.status == 200 and stream.content_type == "text/event-stream"
    assert stream.ended and stream.kinds[-1] == "result"
    assert stream.messages[-1]["payload"] == payload
    assert payload["detail"]["stream_seconds"] > 1.0  # outlived the HTTP deadlines
    # the subscriber was attached before anything was sent: it saw every message, the
    # data channel (open a little later) the same ones from where it opened
    assert client.messages == stream.messages[-len(client.messages):]
    assert {"challenge", "deciding", "result"} <= set(stream.kinds)
    delivery = payload["detail"]["challenge_delivery"]
    assert delivery and all(d["events_subscribers"] == 1 for d in delivery)


async def test_prompts_that_reached_no_one_are_not_delivered(http, url, frames):
    """A push-only client (no data channel) with no events subscriber never saw its
    prompts: whatever its video shows, the session fails, cleanly decided."""
    _, session = await create_session(http, url, KEY, SECRET, challenges="eyes_closed")
    client = WhipClient(session, http)
    assert await client.connect(acting_track(frames, seed=2), data_channel=False) == 201
    try:
        status, payload = await client.poll_result(timeout=60)
    finally:
        await client.hang_up()
    assert status == 200
    assert "challenges not delivered" in reasons(payload)
    items = {i["desc"]: i["content"] for i in payload["infoList"][0]["veritem"]}
    assert items["Live or not"] == "Non-living body"
    assert payload["detail"]["ended_by"] == "challenges not delivered"
    # a backend attaching afterwards still reads what was sent, ending with the result
    late = EventStream(session, http)
    await late.read(timeout=10)
    failed = [m for m in late.messages if m["type"] == "challenge_failed"]
    assert failed and failed[0]["reason"] == "not_delivered"
    assert late.ended and late.kinds[-1] == "result"


async def test_events_subscriber_pairs_with_a_client_without_data_channel(http, url, frames):
    """FFmpeg/OBS style: the WHIP client has no data channel; a screen reads the events
    stream and the person follows the prompts it shows."""
    _, session = await create_session(http, url, KEY, SECRET, challenges="eyes_closed")
    screen = EventStream(session, http)
    track = acting_track(frames, seed=3)
    screen.listeners.append(track.on_message)
    reader = asyncio.create_task(screen.read())
    await asyncio.wait_for(screen.attached.wait(), 10)
    client = WhipClient(session, http)
    assert await client.connect(track, data_channel=False) == 201
    try:
        await asyncio.wait_for(reader, 60)
    finally:
        await client.hang_up()
    payload = screen.messages[-1]["payload"]
    assert "challenges not delivered" not in reasons(payload)
    delivery = payload["detail"]["challenge_delivery"]
    assert delivery and all(not d["data_channel"] and d["events_subscribers"] == 1
                            for d in delivery)
    assert "challenge" in screen.kinds and client.messages == []


async def test_subscriber_limit_and_streams_end_with_the_session(http, url):
    _, session = await create_session(http, url, KEY, SECRET, challenges="eyes_closed")
    streams = [EventStream(session, http) for _ in range(4)]
    readers = [asyncio.create_task(s.read(timeout=30)) for s in streams]
    await asyncio.wait_for(asyncio.gather(*(s.attached.wait() for s in streams)), 10)
    extra = EventStream(session, http)
    await extra.read(timeout=10)
    assert extra.status == 429 and status_of(extra.messages[0]) == "4290"
    client = WhipClient(session, http)
    assert await client.delete() == 200  # DELETE before any media: the session ends
    await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert all(s.status == 200 and s.ended and s.messages == [] for s in streams)


async def test_reader_that_goes_away_is_let_go(http, url, events_server, caplog):
    """A reader that closes its connection mid-stream is noticed (the next heartbeat
    write fails), its subscription is dropped and nothing is logged as an error."""
    _, session = await create_session(http, url, KEY, SECRET, challenges="eyes_closed")
    outbox = events_server.app[MANAGER].store.sessions[session["session_id"]].outbox
    caplog.set_level(logging.INFO)
    async with http.get(session["events_url"], headers={
            "Authorization": f"Bearer {session['session_token']}"}) as resp:
        assert resp.status == 200 and len(outbox.subscribers) == 1
        await resp.content.readline()  # a heartbeat: the stream is live
        resp.close()
    for _ in range(50):  # bounded: a heartbeat every 0.3 s notices it
        if not outbox.subscribers:
            break
        await asyncio.sleep(0.1)
    assert outbox.subscribers == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_events_route_uses_the_bearer_check_and_its_lockout(http):
    """Wrong tokens count toward the per-address lockout; once locked out even the right
    token is refused (4290). An open stream ends cleanly when the server shuts down."""
    server = await start_server(make_config(auth__max_failed_auth=3))
    try:
        url = str(server.make_url("")).rstrip("/")
        _, session = await create_session(http, url, KEY, SECRET, challenges="eyes_closed")
        watching = EventStream(session, http)
        reader = asyncio.create_task(watching.read(timeout=30))
        await asyncio.wait_for(watching.attached.wait(), 10)
        for _ in range(3):
            wrong = EventStream(session, http)
            await wrong.read(timeout=10, token="wrong")
            assert wrong.status == 401 and status_of(wrong.messages[0]) == "4010"
        locked = EventStream(session, http)
        await locked.read(timeout=10)
        assert locked.status == 429 and status_of(locked.messages[0]) == "4290"
        unknown = EventStream({**session, "events_url": f"{url}/v1/sessions/x/events"}, http)
        await unknown.read(timeout=10)
        assert unknown.status == 429  # lockout first, before the session is looked up
    finally:
        await server.close()
    await asyncio.wait_for(reader, 10)
    assert watching.status == 200 and watching.ended
