"""A real aiortc WHIP client for tests and benchmarks: streams a clip, records messages.

It does what a kiosk or SDK client does: opens the `liveness` data channel, offers
its camera (here: a clip, looped, paced in real time) as VP8 or H.264, POSTs the offer
to the session's WHIP URL with the bearer token, and listens. It answers nothing on
the data channel: the challenges are met (or not) by what the clip shows.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from service.client import signed_fields


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

    async def connect(self, track: MediaStreamTrack, data_channel: bool = True) -> int:
        """Offer, POST, answer; returns the WHIP HTTP status (201 when accepted)."""
        self.result = asyncio.get_running_loop().create_future()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if data_channel:
            channel = self.pc.createDataChannel("liveness")

            @channel.on("message")
            def on_message(text: str) -> None:
                message = json.loads(text)
                self.messages.append(message)
                self.received_at.append(time.monotonic())
                if message.get("type") == "result" and not self.result.done():
                    self.result.set_result(message["payload"])

        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences(
            [c for c in codecs if c.mimeType in (f"video/{self.codec}", "video/rtx")])
        await self.pc.setLocalDescription(await self.pc.createOffer())
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
