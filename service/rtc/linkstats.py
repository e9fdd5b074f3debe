"""The receive side's health: what the link measured, and keyframes asked for on time.

What aiortc (1.16) does by itself on a lossy link, read in its rtcrtpreceiver.py and
jitterbuffer.py: the video receiver sends an RTCP NACK once for each hole in the
sequence numbers, and the aiortc or browser sender retransmits (as RTX when
negotiated; our answer keeps video/rtx). It sends a PLI (keyframe request) when the
decoder fails on a frame, and when its 512-packet jitter buffer overflows. What it
does not do: NACK a hole again when the NACK or the retransmission is lost too. The
jitter buffer then waits at the hole, and every later frame with it, until 512 more
packets came (seconds of frozen video at a camera's packet rate), then asks for a
keyframe. Over 10% loss that happens several times a second.

So `keyframe_watch` watches the decoded frames: when none came for `keyframe_after_s`
while packets still arrive, it drops the incomplete frame stuck at the head of the
jitter buffer (the later ones can assemble again) and sends a PLI itself, again at most
every `keyframe_every_s` while the stall lasts. The frames after a dropped one refer to
it: decoded, they would be smeared pictures whose landmarks read anything (an eye
"closed", a mouth "open"), so `KeyframeGate` keeps them from the decoder until the
keyframe comes (at most `keyframe_wait_s`: a sender that ignores PLIs sends one at its
next group of pictures). The jitter buffer and the decoder queue are aiortc's private
state (aiortc is pinned in pyproject.toml for that reason); if their layout changes,
the watch degrades to PLIs only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver

from service.rtc.stalls import LinkSample, NetworkSettings

log = logging.getLogger("service.rtc")


class LinkMonitor:
    """Samples an aiortc receiver's statistics (RTP counts and loss of the video
    stream, datagrams on its transport) and remembers when datagrams last came."""

    def __init__(self, pc: RTCPeerConnection, receiver: RTCRtpReceiver) -> None:
        self.pc = pc
        self.receiver = receiver
        self.connected = False
        self._received = 0
        self._received_at = time.monotonic()
        self.keyframes_asked = 0

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected = True

    async def watch(self, period_s: float = 0.25) -> None:
        """Sample every `period_s` (until cancelled, with the peer's other tasks), so
        `silent_s` says when datagrams last came, not when someone last asked."""
        while True:
            await asyncio.sleep(period_s)
            await self.sample()

    async def sample(self) -> LinkSample:
        if self.pc.connectionState == "connected":
            self.connected = True
        try:
            report = await self.receiver.getStats()
        except Exception:  # a closed transport has no statistics: what we had stands
            report = {}
        received = self._received
        for stats in report.values():
            if stats.type == "transport":
                received = stats.packetsReceived
        now = time.monotonic()
        if received != self._received:
            self._received, self._received_at = received, now
        # aiortc's report files every RTP stream of a receiver under one id (the last
        # one wins, often the RTX stream): the video stream's counters are read from
        # the receiver itself, the retransmission streams left out
        streams = getattr(self.receiver, "_RTCRtpReceiver__remote_streams", {})
        rtx = set(getattr(self.receiver, "_RTCRtpReceiver__rtx_ssrc", {}))
        video = max((s for ssrc, s in streams.items() if ssrc not in rtx),
                    key=lambda s: s.packets_received, default=None)
        return LinkSample(
            connected=self.connected, received=received, silent_s=now - self._received_at,
            rtp_packets=video.packets_received if video else 0,
            rtp_lost=max(0, video.packets_lost) if video else 0,
            jitter_ms=1000 * video.jitter / 90000 if video else 0.0,  # video clock
            keyframes_asked=self.keyframes_asked)


def is_keyframe(mime: str, data: bytes) -> bool | None:
    """Whether an encoded frame (as aiortc's depayloader assembled it) is a keyframe;
    None for a codec not known here. VP8: the frame tag's first bit is 0 (RFC 6386
    section 9.1). H.264: an IDR slice or a sequence parameter set (NAL types 5, 7)
    after an Annex B start code."""
    codec = mime.lower()
    if codec == "video/vp8":
        return bool(data) and data[0] & 1 == 0
    if codec == "video/h264":
        at = data.find(b"\x00\x00\x01")
        while at >= 0 and at + 3 < len(data):
            if data[at + 3] & 0x1F in (5, 7):
                return True
            at = data.find(b"\x00\x00\x01", at + 3)
        return False
    return None


class KeyframeGate:
    """Holds encoded frames back from the decoder, once told a frame was dropped,
    until a keyframe (or `wait_s` passed); see the module docstring."""

    def __init__(self, receiver: RTCRtpReceiver, wait_s: float) -> None:
        self.wait_s = wait_s
        self.until = 0.0  # monotonic; frames are held until a keyframe before this
        self.held = 0
        decoder_queue = getattr(receiver, "_RTCRtpReceiver__decoder_queue", None)
        if decoder_queue is None:
            return
        put = decoder_queue.put

        def gated(item: Any, *args: Any, **kwargs: Any) -> None:
            if item is not None and time.monotonic() < self.until:
                codec, frame = item
                if is_keyframe(codec.mimeType, frame.data) is False:
                    self.held += 1
                    return
                self.until = 0.0
            put(item, *args, **kwargs)
        decoder_queue.put = gated

    def hold(self) -> None:
        self.until = time.monotonic() + self.wait_s


def _media_ssrc(receiver: RTCRtpReceiver) -> int | None:
    sources = receiver.getSynchronizationSources()
    rtx = set(getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {}))
    media = [s.source for s in sources if s.source not in rtx]
    return media[0] if media else None


def stuck_hole(receiver: RTCRtpReceiver) -> int | None:
    """The sequence number of the first missing packet in aiortc's jitter buffer with
    packets after it (a frame waiting for it), or None."""
    buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    packets = getattr(buffer, "_packets", None)
    origin = getattr(buffer, "_origin", None)
    if packets is None or origin is None:
        return None
    capacity = len(packets)
    hole = next((i for i in range(capacity) if packets[(origin + i) % capacity] is None),
                None)
    if hole is None or not any(packets[(origin + i) % capacity] is not None
                               for i in range(hole, capacity)):
        return None
    return (origin + hole) & 0xFFFF


def _skip_stuck_frame(receiver: RTCRtpReceiver) -> bool:
    """Drop the incomplete frame at the head of aiortc's jitter buffer, up to the first
    packet of the next frame after its hole (see the module docstring); True if there
    was one."""
    buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    hole = stuck_hole(receiver)
    if hole is None or not hasattr(buffer, "smart_remove"):
        return False
    buffer.smart_remove(((hole - buffer._origin) & 0xFFFF) + 1)
    return True


async def keyframe_watch(receiver: RTCRtpReceiver, monitor: LinkMonitor,
                         last_frame: Callable[[], float], params: NetworkSettings) -> None:
    """Ask for a keyframe as soon as decoding breaks (see the module docstring): when
    no frame decoded for `keyframe_after_s` and the same hole has held the jitter
    buffer that long (a late or retransmitted packet fills a hole sooner: with 150 ms
    of jitter, acting on any hole at once dropped frames that were about to complete,
    and the keyframes asked for were reordered in turn). `last_frame()`: monotonic time
    of the last decoded frame (0: none yet). Runs until cancelled (with the peer's
    other tasks)."""
    gate = KeyframeGate(receiver, params.keyframe_wait_s)
    asked_at = 0.0
    hole: int | None = None
    hole_since = 0.0
    started = time.monotonic()  # a first keyframe that never completes counts too
    while True:
        await asyncio.sleep(0.1)
        now = time.monotonic()
        current = stuck_hole(receiver)
        if current != hole:
            hole, hole_since = current, now
        last = last_frame() or started
        if hole is None or now - last < params.keyframe_after_s \
                or now - hole_since < params.keyframe_after_s \
                or now - asked_at < params.keyframe_every_s:
            continue
        ssrc = _media_ssrc(receiver)
        if ssrc is None or not _skip_stuck_frame(receiver):
            continue
        gate.hold()
        try:
            await receiver._send_rtcp_pli(ssrc)
        except Exception:  # the transport closed under us: the session is ending
            return
        monitor.keyframes_asked += 1
        asked_at, hole = now, None
        log.debug("keyframe asked: %.2f s without a frame, the frame stuck behind a "
                  "hole dropped", now - last)
