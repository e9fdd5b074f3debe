"""The server side of one session's WebRTC peer connection (aiortc).

Answers a WHIP offer (all our candidates gathered before answering: non-trickle, which
every WHIP client accepts), takes the first video track for analysis, drains and drops
audio (an unread aiortc track would queue its frames forever), picks up the client's
`liveness` data channel, and reports when the peer goes away.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable

from aiortc import (RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpReceiver,
                    RTCSessionDescription)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from service.errors import BadMedia
from service.rtc.runner import Channel

log = logging.getLogger("service.rtc")

VIDEO_CODECS = ("video/VP8", "video/H264", "video/rtx")


@dataclass
class Peer:
    pc: RTCPeerConnection
    channel: Channel = field(default_factory=Channel)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def close(self) -> None:
        self.gone.set()
        for task in self.tasks:
            task.cancel()
        await self.pc.close()

    async def add_candidates(self, sdpfrag: str) -> int:
        """Trickle ICE (RFC 9725 PATCH): add the `a=candidate` lines of an SDP fragment."""
        added = 0
        mid = None
        for line in sdpfrag.splitlines():
            line = line.strip()
            if line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=candidate:"):
                candidate = candidate_from_sdp(line[len("a=candidate:"):])
                candidate.sdpMid = mid
                candidate.sdpMLineIndex = None if mid is not None else 0
                await self.pc.addIceCandidate(candidate)
                added += 1
        return added


async def _drain(track: MediaStreamTrack) -> None:
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass


def check_offer(sdp: str) -> None:
    if not sdp.lstrip().startswith("v=0"):
        raise BadMedia("the body is not an SDP offer")
    if "m=video" not in sdp:
        raise BadMedia("the offer has no video; send the camera as a video track")


async def answer(offer_sdp: str, ice_servers: tuple[str, ...],
                 on_video: Callable[[MediaStreamTrack, Peer], None]) -> tuple[Peer, str]:
    """Create the peer connection for an offer; returns it and the SDP answer."""
    check_offer(offer_sdp)
    # An explicit (possibly empty) server list: aiortc's default would contact a public
    # STUN server, and nothing here may reach out to the internet on its own.
    config = RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in ice_servers])
    peer = Peer(RTCPeerConnection(configuration=config))
    pc = peer.pc

    @pc.on("datachannel")
    def on_datachannel(dc) -> None:  # type: ignore[no-untyped-def]
        if dc.label == "liveness" and peer.channel.dc is None:
            peer.channel.dc = dc

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and not any(t.get_name() == "analysis" for t in peer.tasks):
            on_video(track, peer)
        else:
            peer.tasks.append(asyncio.create_task(_drain(track), name="drain"))

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            peer.gone.set()

    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                caps = RTCRtpReceiver.getCapabilities("video")
                transceiver.setCodecPreferences(
                    [c for c in caps.codecs if c.mimeType in VIDEO_CODECS])
        await pc.setLocalDescription(await pc.createAnswer())
    except (ValueError, AttributeError, KeyError) as exc:
        await peer.close()
        raise BadMedia(f"cannot use this SDP offer ({exc})") from None
    except Exception:
        await peer.close()
        raise
    return peer, pc.localDescription.sdp
