"""A real aiortc WHIP client for tests and benchmarks: streams a clip, records messages.

It does what a kiosk or SDK client does: opens the `liveness` data channel, offers
its camera as VP8 or H.264, POSTs the offer to the session's WHIP URL with the bearer
token, and listens. Its camera is either a clip looped in real time (ClipTrack: it
ignores every prompt, as a replayed recording does) or ActingTrack, a simulated person
who follows the prompts with real frames (see there what is simulated). EventStream
reads the session's events stream (SSE), as a screen paired with a push-only WHIP
client does.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from testing.client import signed_fields
from testing.netimpair import Link, impair_peer


class ClipTrack(MediaStreamTrack):
    """BGR frames played in a loop at `fps`, in real time, like a camera."""

    kind = "video"

    def __init__(self, frames: list[np.ndarray], fps: float = 15.0) -> None:
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        image = self.frames[self.sent % len(self.frames)]
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = int(self.sent * 90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.sent += 1
        return frame


@dataclass(frozen=True)
class Performance:
    """Real frames of one action: going into it, the held state (repeated, with sensor
    noise, until the release; played once for a legacy `blink` / `mouth`, which have no
    release), and coming out of it."""

    onset: list[np.ndarray]
    hold: list[np.ndarray]
    offset: list[np.ndarray]
    until_release: bool = True


def performance(frames: list[np.ndarray], span: tuple[int, int], held: tuple[int, int],
                until_release: bool = True) -> Performance:
    """An action cut from a real clip: the frames of `span` (inclusive; e.g. a labelled
    blink of labels.json) with `held` (inclusive) the frames where the action is fully
    on (the eyes shut, the mouth widest), measured by the caller; a labelled blink's
    range also holds its slow reopening, so its middle is not necessarily shut."""
    (first, last), (on, off) = span, held
    return Performance(onset=frames[first:on], hold=frames[on:off + 1],
                       offset=frames[off + 1:last + 1], until_release=until_release)


class ActingTrack(MediaStreamTrack):
    """A simulated honest person in front of a camera, built from real frames.

    Between prompts it shows `neutral` frames (played forward and back, so there is no
    cut). On a `challenge` message for an action it has a Performance for, it waits a
    human reaction time drawn from `reaction_s` (seeded), plays the onset frames, then
    repeats the held frames with a little Gaussian sensor noise until the `release`
    message plus another reaction time, plays the offset frames and returns to neutral
    (a legacy `blink` / `mouth`: the frames once, no release to wait for).

    What is simulated: the timing (reaction times are drawn, not measured on people),
    the hold (a few real frames repeated with noise, not a person holding still), and
    the cut between the neutral clip and the action frames (same clip and person, but
    the action frames come from another moment of it). An action it has no frames for
    (turns: ../shared/data has no head-turning footage) is ignored, like a person who
    did not understand the prompt.
    """

    kind = "video"

    def __init__(self, neutral: list[np.ndarray], actions: dict[str, Performance],
                 seed: int, fps: float = 15.0, reaction_s: tuple[float, float] = (0.3, 1.2),
                 noise: float = 2.0) -> None:
        super().__init__()
        self.neutral = neutral
        self.actions = actions
        self.fps = fps
        self.reaction_s = reaction_s
        self.noise = noise
        self.rng = random.Random(seed)
        self.noise_rng = np.random.default_rng(seed)
        self.sent = 0
        self._start: float | None = None
        self._neutral_at = 0
        self._action: Performance | None = None
        self._onset_at = 0.0  # monotonic time the current action starts
        self._release_at: float | None = None
        self.performed: list[tuple[str, float, float | None]] = []  # (action, onset, release)

    def on_message(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        if message.get("type") == "challenge" and message.get("action") in self.actions:
            act = self._action = self.actions[message["action"]]
            self._onset_at = now + self.rng.uniform(*self.reaction_s)
            self._release_at = None if act.until_release else \
                self._onset_at + (len(act.onset) + len(act.hold)) / self.fps
            self.performed.append((message["action"], self._onset_at, self._release_at))
        elif message.get("type") == "release" and self._action is not None \
                and self._release_at is None:
            self._release_at = now + self.rng.uniform(*self.reaction_s)
            action, onset, _ = self.performed[-1]
            self.performed[-1] = (action, onset, self._release_at)

    def _frame_at(self, now: float) -> np.ndarray:
        act = self._action
        if act is None or now < self._onset_at:
            return self._next_neutral()
        into = int((now - self._onset_at) * self.fps)
        if into < len(act.onset):
            return act.onset[into]
        if self._release_at is None or now < self._release_at:
            held = act.hold[into % len(act.hold)].astype(np.float32)
            held += self.noise_rng.normal(0.0, self.noise, held.shape).astype(np.float32)
            return np.clip(held, 0, 255).astype(np.uint8)
        out = int((now - self._release_at) * self.fps)
        if out < len(act.offset):
            return act.offset[out]
        self._action = None
        return self._next_neutral()

    def _next_neutral(self) -> np.ndarray:
        period = 2 * len(self.neutral) - 2 if len(self.neutral) > 1 else 1
        i = self._neutral_at % period
        self._neutral_at += 1
        return self.neutral[i if i < len(self.neutral) else period - i]

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = av.VideoFrame.from_ndarray(self._frame_at(time.monotonic()), format="bgr24")
        frame.pts = int(self.sent * 90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.sent += 1
        return frame


@dataclass
class EventStream:
    """A reader of GET /v1/sessions/{id}/events: collects the JSON messages until the
    server ends the stream; `attached` is set once the server answered (from then on
    the session counts it as a delivery path)."""

    session: dict[str, Any]
    http: aiohttp.ClientSession
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    status: int = 0
    content_type: str = ""
    ended: bool = False
    attached: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, timeout: float = 90.0, token: str | None = None) -> None:
        """Read until the stream ends (bounded by `timeout`)."""
        token = self.session["session_token"] if token is None else token
        async with asyncio.timeout(timeout):
            async with self.http.get(self.session["events_url"], headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "text/event-stream"}) as resp:
                self.status, self.content_type = resp.status, resp.content_type
                self.attached.set()
                if resp.status != 200:
                    self.messages.append(await resp.json())
                    return
                async for line in resp.content:
                    if line.startswith(b"data: "):
                        message = json.loads(line[6:])
                        self.messages.append(message)
                        for listener in self.listeners:
                            listener(message)
                self.ended = True

    @property
    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]


@dataclass
class WhipClient:
    session: dict[str, Any]
    http: aiohttp.ClientSession
    codec: str = "VP8"  # or "H264"
    messages: list[dict[str, Any]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # monotonic, per message
    result: asyncio.Future | None = None
    pc: RTCPeerConnection | None = None
    location: str = ""
    # called with each data-channel message (e.g. ActingTrack.on_message)
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    # gather only TURN relay candidates (W3C iceTransportPolicy "relay"), as a client
    # behind a strict NAT or a locked-down network effectively does
    relay_only: bool = False
    # a user-space network impairment on everything the peer sends and receives
    # (testing/netimpair.py): RTP, RTCP, the data channel and ICE
    link: Link | None = None

    async def connect(self, track: MediaStreamTrack, data_channel: bool = True) -> int:
        """Offer, POST, answer; returns the WHIP HTTP status (201 when accepted)."""
        self.result = asyncio.get_running_loop().create_future()
        # the session's ice_servers, as a browser passes them (none: host candidates)
        servers = [RTCIceServer(**s) for s in self.session.get("ice_servers", [])]
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers,
                                                     iceTransportPolicy=policy))
        if data_channel:
            channel = self.pc.createDataChannel("liveness")

            @channel.on("message")
            def on_message(text: str) -> None:
                message = json.loads(text)
                self.messages.append(message)
                self.received_at.append(time.monotonic())
                for listener in self.listeners:
                    listener(message)
                if message.get("type") == "result" and not self.result.done():
                    self.result.set_result(message["payload"])

        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences(
            [c for c in codecs if c.mimeType in (f"video/{self.codec}", "video/rtx")])
        await self.pc.setLocalDescription(await self.pc.createOffer())
        if self.link is not None:
            impair_peer(self.pc, self.link)
        async with self.http.post(self.session["whip_url"], data=self.pc.localDescription.sdp,
                                  headers={"Content-Type": "application/sdp",
                                           "Authorization": f"Bearer {self.token}"}) as resp:
            if resp.status != 201:
                return resp.status
            self.location = resp.headers["Location"]
            answer = await resp.text()
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return 201

    @property
    def latency_ms(self) -> float | None:
        """From the last `challenge_met` to the `result` message, as the client saw it."""
        kinds = [m["type"] for m in self.messages]
        if "result" not in kinds or "challenge_met" not in kinds:
            return None
        last_met = max(i for i, k in enumerate(kinds) if k == "challenge_met")
        return 1000 * (self.received_at[kinds.index("result")] - self.received_at[last_met])

    @property
    def token(self) -> str:
        return self.session["session_token"]

    async def poll_result(self, timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
        """GET result_url until decided (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.http.get(self.session["result_url"], headers={
                    "Authorization": f"Bearer {self.token}"}) as resp:
                status, body = resp.status, await resp.json()
            if status != 202 or time.monotonic() > deadline:
                return status, body
            await asyncio.sleep(0.25)

    async def hang_up(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self.link is not None:
            self.link.close()

    async def delete(self) -> int:
        url = self.session["whip_url"]
        async with self.http.delete(url, headers={"Authorization": f"Bearer {self.token}"}) as r:
            return r.status


async def create_session(http: aiohttp.ClientSession, base_url: str, key: str, secret: str,
                         **fields: Any) -> tuple[int, dict[str, Any]]:
    """POST /v1/sessions as a form (media fields as bytes become base64 by the caller)."""
    form = {**signed_fields(key, secret), **{k: str(v) for k, v in fields.items()}}
    async with http.post(f"{base_url}/v1/sessions", data=form) as resp:
        return resp.status, await resp.json()
