"""The server side of one session's WebRTC peer connection (aiortc).

Answers a WHIP offer (all our candidates gathered before answering: non-trickle, which
every WHIP client accepts), takes the first video track for analysis, drains and drops
audio (an unread aiortc track would queue its frames forever), picks up the client's
`liveness` data channel, and reports when the peer goes away. Offers and trickle
fragments reach it validated (service.rtc.sdp), so what aiortc still refuses here is a
negotiation it cannot complete, not a line it cannot read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from service.errors import BadMedia
from service.rtc.sdp import ANALYSED_CODECS, TrickleCandidate

log = logging.getLogger("service.rtc")

VIDEO_CODECS = (*ANALYSED_CODECS, "video/rtx")
# What RTCPeerConnection.setRemoteDescription/createAnswer raise for a remote
# description they cannot use: ValueError from its validation (ICE credentials, RTCP
# mux), OperationError when no codec is common, InvalidStateError/InvalidAccessError
# from the W3C state rules.
NEGOTIATION_ERRORS = (ValueError, OperationError, InvalidStateError, InvalidAccessError)


@dataclass
class Peer:
    pc: RTCPeerConnection
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def close(self) -> None:
        self.gone.set()
        for task in self.tasks:
            task.cancel()
        await self.pc.close()

    async def add_candidates(self, candidates: list[TrickleCandidate]) -> int:
        """Trickle ICE (RFC 9725 PATCH): add candidates parsed by
        service.rtc.sdp.trickle_candidates (a candidate with no a=mid before it is
        for the first media section)."""
        for item in candidates:
            item.candidate.sdpMid = item.mid
            item.candidate.sdpMLineIndex = None if item.mid is not None else 0
            await self.pc.addIceCandidate(item.candidate)
        return len(candidates)

    async def close_after_failure(self) -> None:
        """Close a connection whose negotiation failed, without letting a failure to
        close hide why it failed: that one is logged (it is a bug) and the caller
        raises its own error."""
        try:
            await self.close()
        except Exception:
            log.exception("closing a peer connection after a failed negotiation")


async def _drain(track: MediaStreamTrack) -> None:
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass


async def answer(offer_sdp: str, ice_servers: tuple[str, ...],
                 on_video: Callable[[MediaStreamTrack, Peer], None],
                 on_channel: Callable[[RTCDataChannel], None]) -> tuple[Peer, str]:
    """Create the peer connection for an offer that service.rtc.sdp.validate_offer
    accepted; returns it and the SDP answer. `on_channel` gets the client's
    `liveness` data channel when it arrives."""
    # An explicit (possibly empty) server list: aiortc's default would contact a public
    # STUN server, and nothing here may reach out to the internet on its own.
    config = RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in ice_servers])
    peer = Peer(RTCPeerConnection(configuration=config))
    pc = peer.pc

    @pc.on("datachannel")
    def on_datachannel(dc: RTCDataChannel) -> None:
        if dc.label == "liveness":
            on_channel(dc)

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
    except NEGOTIATION_ERRORS:
        await peer.close_after_failure()
        raise BadMedia("bad SDP offer: no common codec or transport to answer it") from None
    except BaseException:
        await peer.close_after_failure()
        raise
    return peer, pc.localDescription.sdp
