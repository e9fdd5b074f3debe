"""When the video stalls: the challenge clock pauses, and a session the network failed
answers `network` instead of a liveness verdict.

A stall is a stretch with no decoded frame (lost packets no retransmission repaired, a
keyframe lost, a blackout, an uplink squeezed below the stream's rate). While one
lasts the runner stops the challenge clock (no prompt, release or timeout is judged on
video nobody saw); when frames come back the challenge under way begins again with a
fresh pause (ChallengeScript.resume). Both are bounded: the time stalled in total and
the times a prompted challenge began again (each restart is one more draw of the
timing for a recording, so an attacker cannot buy retries by dropping packets).

A session that ends because of the network (a bound passed, or no video came while the
link itself failed: never connected, nothing received, packets that never decoded) is
answered with status 4007 and `detail.reasons == ["network"]`, with the measured loss
and freeze time: the integrator retries it; it says nothing about the person. A
challenge that had already failed is judged as usual: the network does not erase it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import NetworkUnstable

NETWORK = "network"


@dataclass(frozen=True)
class NetworkSettings:
    # No decoded frame for this long is a stall (the clock pauses). A 15 fps camera
    # sends a frame every 67 ms; over 3% loss with 50 ms jitter the longest gaps
    # between decoded frames were 0.2-0.3 s (NACK repairs most losses within a round
    # trip), so 0.6 s is twice that and still well under a reaction window (2.5 s).
    stall_after_s: float = 0.6
    # A connected link that carried no datagram at all for this long went silent (the
    # network, not the camera). Not `stall_after_s`: a sender with no video still sends
    # RTCP, but aiortc's sender only every 0.5-1.5 s (rtcrtpsender._run_rtcp; browsers
    # about once a second), so a 0.6 s limit called a connected camera that sends
    # nothing `network` or "no video received" depending on when it was sampled
    # (tests/test_rtc_sessions.py failed 1 run in 3). Twice the longest RTCP interval.
    silent_after_s: float = 3.0
    # Stalled time a session tolerates in total; beyond it the session ends as
    # `network`. 8 s: a 2 s blackout and a few seconds of a squeezed uplink pass, and
    # it ends before media_timeout_s (10 s) would call a stalled stream "no video".
    max_stalled_s: float = 8.0
    # Prompted challenges that may begin again after stalls. Each is a new random
    # pause and prompt: a recording gets one more chance at the timing per restart.
    max_restarts: int = 3
    # The receiver drops the frame stuck behind a hole and asks the sender for a
    # keyframe (RTCP PLI) when no frame decoded for this long and the same hole held
    # the jitter buffer as long (NACK repairs a loss within a round trip: ~0.1 s at
    # 50 ms of jitter, up to ~0.35 s at 150 ms), again at most this often while it
    # lasts (the PLI or the keyframe may be lost).
    keyframe_after_s: float = 0.4
    keyframe_every_s: float = 0.5
    # After a frame was dropped, later frames wait for a keyframe this long at most
    # (one group of pictures of a sender that ignores PLIs; 2 s is FFmpeg's -g 30 at
    # 15 fps): undecodable references would give smeared pictures.
    keyframe_wait_s: float = 2.0
    # A face is in view but no prompt could be delivered yet: the client offered a
    # data channel that is still opening. Over 3% loss its DTLS and SCTP handshakes
    # need retransmissions (SCTP's first is 3 s later), and prompts went out to nobody
    # 5-7 s into sessions. The script waits this long after the first face for the
    # channel (or an events subscriber), then begins anyway. A client that offered no
    # channel is not waited for (a pushed recording with no events subscriber fails as
    # "challenges not delivered" at its first prompt, as before).
    channel_wait_s: float = 15.0


@dataclass
class StallWatch:
    """Gaps between decoded frames, on the runner's clock (seconds)."""

    params: NetworkSettings
    since: float | None = None  # the last frame before the current stall
    total_s: float = 0.0  # ended stalls
    count: int = 0
    longest_s: float = 0.0

    @property
    def stalled(self) -> bool:
        return self.since is not None

    def check(self, now: float, last_frame: float | None) -> bool:
        """No frame at `now`: is this a stall (begun now or before)? True only on the
        pass that finds a new one."""
        if self.since is not None or last_frame is None:
            return False
        if now - last_frame >= self.params.stall_after_s:
            self.since = last_frame
            return True
        return False

    def frame(self, now: float) -> float | None:
        """A frame came at `now`: the stall's length when it ended one, else None."""
        if self.since is None:
            return None
        gap = now - self.since
        self.since = None
        self.total_s += gap
        self.count += 1
        self.longest_s = max(self.longest_s, gap)
        return gap

    def frozen_s(self, now: float) -> float:
        """Stalled time so far, the current stall included."""
        return self.total_s + (now - self.since if self.since is not None else 0.0)

    def exhausted(self, now: float) -> bool:
        return self.frozen_s(now) > self.params.max_stalled_s


@dataclass(frozen=True)
class LinkSample:
    """What the peer connection measured (service.rtc.linkstats)."""

    connected: bool = False  # ICE and DTLS came up at some point
    received: int = 0  # datagrams received on the media transport (RTP, RTCP, SCTP)
    silent_s: float = 0.0  # since the last of them
    rtp_packets: int = 0  # video RTP packets received (retransmissions apart)
    rtp_lost: int = 0  # video RTP packets never received (before retransmission)
    jitter_ms: float = 0.0
    keyframes_asked: int = 0  # PLIs sent by the keyframe watch

    @property
    def loss(self) -> float:
        expected = self.rtp_packets + self.rtp_lost
        return self.rtp_lost / expected if expected else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"connected": self.connected, "rtp_packets": self.rtp_packets,
                "rtp_lost": self.rtp_lost, "loss": round(self.loss, 4),
                "jitter_ms": round(self.jitter_ms, 1), "silent_s": round(self.silent_s, 2),
                "keyframes_asked": self.keyframes_asked}


def failed_by_network(ended_by: str, frames: int, link: LinkSample | None,
                      params: NetworkSettings) -> bool:
    """Did the network end this session (the script not failed: the caller checks)?
    A stall past its bounds did; so did "no video received" on a link that never
    connected, went silent, or carried packets that never made a frame. A connected
    link that carries its RTCP but no video is a camera that sends nothing: that stays
    "no video received"."""
    if ended_by == NETWORK:
        return True
    if ended_by not in ("no video received", "session deadline") or link is None:
        return False
    return (not link.connected or link.silent_s >= params.silent_after_s
            or (frames == 0 and link.rtp_packets > 0))


def network_detail(stalls: StallWatch, now: float, link: LinkSample | None,
                   restarts: int) -> dict[str, Any]:
    return {"frozen_s": round(stalls.frozen_s(now), 2), "stalls": stalls.count
            + stalls.stalled, "longest_stall_s": round(max(
                stalls.longest_s, now - stalls.since if stalls.since is not None else 0.0),
                2), "restarts": restarts, **(link.to_json() if link is not None else {})}


def network_error(detail: dict[str, Any]) -> tuple[NetworkUnstable, dict[str, Any]]:
    """What a session the network failed is answered (see the module docstring): the
    error, its words saying how bad the link was, and the answer's detail."""
    net = detail.get(NETWORK, {})
    text = (f"{NetworkUnstable.message} ({net.get('frozen_s', 0)} s frozen, "
            f"{100 * net.get('loss', 0.0):.1f}% packets lost)")
    return NetworkUnstable(text), {"reasons": [NETWORK], **detail}
