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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

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
from aiortc.rtcicetransport import parse_stun_turn_uri

from service.errors import BadMedia
from service.rtc.aiortc_internals.consent import tolerate_push_only_peers
from service.rtc.aiortc_internals.sctp_timers import use_prompt_timers
from service.rtc.sdp import ANALYSED_CODECS, TrickleCandidate

log = logging.getLogger("service.rtc")

VIDEO_CODECS = (*ANALYSED_CODECS, "video/rtx")
# What RTCPeerConnection.setRemoteDescription/createAnswer raise for a remote
# description they cannot use: ValueError from its validation (ICE credentials, RTCP
# mux), OperationError when no codec is common, InvalidStateError/InvalidAccessError
# from the W3C state rules.
NEGOTIATION_ERRORS = (ValueError, OperationError, InvalidStateError, InvalidAccessError)


@dataclass(frozen=True)
class IceServer:
    """One STUN/TURN server: its URL as RFC 7064/7065 write it (no credentials in it)
    and, for TURN, the long-term credentials (RFC 8489 section 9.2)."""

    url: str
    username: str | None = None
    credential: str | None = None

    def to_rtc(self) -> RTCIceServer:
        return RTCIceServer(urls=self.url, username=self.username, credential=self.credential)

    def to_json(self) -> dict[str, Any]:
        """The W3C RTCIceServer dictionary a browser passes to RTCPeerConnection."""
        item: dict[str, Any] = {"urls": [self.url]}
        if self.username is not None:
            item.update(username=self.username, credential=self.credential)
        return item


def parse_ice_server(text: str) -> IceServer:
    """Parse one entry of the `ice_servers` setting.

    `stun:host[:port]`, or `turn:` / `turns:` `host[:port][?transport=udp|tcp]`: without
    credentials each session gets its own from coturn's shared secret
    (service/rtc/turn.py); the static form puts them in front of the host,
    `turn:USER:PASSWORD@host...`. RFC 7065 has no place for them, so they are taken off
    the URL here, and a `:`, `@`, `,` or `%` inside either is percent-encoded (`%3A`,
    `%40`, `%2C`, `%25`). aiortc uses the first STUN and the first TURN server of the
    list (TURN over UDP or TCP, or TLS over TCP).
    """
    text = text.strip()
    scheme, _, rest = text.partition(":")
    username = credential = None
    if scheme in ("turn", "turns") and "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, sep, password = userinfo.partition(":")
        if not sep or not user or not password:
            raise ValueError("ice_servers: a TURN URL's credentials look like "
                             "turn:USER:PASSWORD@host:port")
        username, credential = unquote(user), unquote(password)
    url = f"{scheme}:{rest}"
    try:
        transport = parse_stun_turn_uri(url).get("transport")
        if transport not in (None, "udp", "tcp") or (scheme == "turns" and transport != "tcp"):
            raise ValueError("a transport aiortc does not use")
    except ValueError:
        # the URL is not echoed: a malformed entry may still hold a password
        raise ValueError("ice_servers: each entry must be stun:host[:port] or "
                         "turn[s]:[USER:PASSWORD@]host[:port][?transport=udp|tcp]") from None
    return IceServer(url, username, credential)


def parse_ice_servers(texts: Iterable[str]) -> tuple[IceServer, ...]:
    return tuple(parse_ice_server(t) for t in texts if t.strip())


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


async def answer(offer_sdp: str, ice_servers: tuple[IceServer, ...],
                 on_video: Callable[[MediaStreamTrack, Peer], None],
                 on_channel: Callable[[RTCDataChannel], None]) -> tuple[Peer, str]:
    """Create the peer connection for an offer that service.rtc.sdp.validate_offer
    accepted; returns it and the SDP answer. `on_channel` gets the client's
    `liveness` data channel when it arrives."""
    # An explicit (possibly empty) server list: aiortc's default would contact a public
    # STUN server, and nothing here may reach out to the internet on its own.
    config = RTCConfiguration(iceServers=[s.to_rtc() for s in ice_servers])
    use_prompt_timers()  # prompts lost on the data channel are sent again in time
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
        tolerate_push_only_peers(pc)  # FFmpeg answers no consent checks
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
