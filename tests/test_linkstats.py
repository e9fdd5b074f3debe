"""Keyframe handling on the receive side (service/rtc/linkstats.py) on real encoder
output and a real aiortc jitter buffer."""

from __future__ import annotations

import fractions
from types import SimpleNamespace

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from service.rtc.linkstats import _skip_stuck_frame, is_keyframe


def encoded(encoder, depayload, keyframes: set[int], count: int = 5) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (120, 160, 3), np.uint8),
                                           format="bgr24")
        frame.pts, frame.time_base = i * 6000, fractions.Fraction(1, 90000)
        packets, _ = encoder.encode(frame, force_keyframe=i in keyframes)
        out.append(b"".join(depayload(p) for p in packets))
    return out


def test_keyframes_are_told_apart_for_vp8_and_h264():
    for mime, encoder, depayload in (("video/VP8", Vp8Encoder(), vp8_depayload),
                                     ("video/H264", H264Encoder(), h264_depayload)):
        frames = encoded(encoder, depayload, keyframes={3})
        assert [is_keyframe(mime, f) for f in frames] == [True, False, False, True, False]
    assert is_keyframe("video/AV1", b"\x00") is None


def packet(seq: int, ts: int) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts)
    p._data = b"x"  # what the receiver's depayloader leaves on each packet
    return p


def test_the_frame_stuck_behind_a_hole_is_dropped_and_the_next_ones_assemble():
    buffer = JitterBuffer(capacity=128, is_video=True)
    # frame 1000 is packets 0-2, packet 1 never arrives; frames 2000, 3000 come whole
    for seq, ts in ((0, 1000), (2, 1000), (3, 2000), (4, 2000), (5, 3000)):
        _, frame = buffer.add(packet(seq, ts))
        assert frame is None  # stuck at the hole: aiortc waits for it
    receiver = SimpleNamespace(_RTCRtpReceiver__jitter_buffer=buffer)
    assert _skip_stuck_frame(receiver)  # type: ignore[arg-type]
    _, frame = buffer.add(packet(6, 4000))
    assert frame is not None and frame.timestamp == 2000
    assert not _skip_stuck_frame(receiver)  # type: ignore[arg-type]  # nothing stuck now
