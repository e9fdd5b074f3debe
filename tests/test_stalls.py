"""Stall bookkeeping and when a session counts as failed by the network
(service/rtc/stalls.py), on explicit times."""

from __future__ import annotations

from service.rtc.decision import StreamOutcome
from service.rtc.stalls import (
    LinkSample,
    NetworkSettings,
    StallWatch,
    failed_by_network,
    network_detail,
    network_error,
)

P = NetworkSettings(stall_after_s=0.6, max_stalled_s=5.0)


def test_gaps_shorter_than_the_threshold_are_no_stall():
    watch = StallWatch(P)
    assert not watch.check(1.5, last_frame=1.0)
    assert watch.frame(1.55) is None and watch.count == 0 and watch.frozen_s(2.0) == 0.0


def test_a_stall_runs_from_the_last_frame_and_adds_up():
    watch = StallWatch(P)
    assert watch.check(1.7, last_frame=1.0)  # found now, begun at the last frame
    assert not watch.check(2.0, last_frame=1.0)  # the same stall
    assert watch.stalled and watch.frozen_s(3.0) == 2.0
    assert watch.frame(3.0) == 2.0 and not watch.stalled
    assert watch.check(5.0, last_frame=4.0)
    assert watch.frozen_s(7.5) == 5.5 and watch.exhausted(7.5)
    assert not StallWatch(P).exhausted(100.0)  # never stalled


def test_what_the_network_failed():
    dead = LinkSample(connected=False)
    silent = LinkSample(connected=True, received=50, silent_s=3.0)
    garbled = LinkSample(connected=True, received=500, rtp_packets=400)
    camera_off = LinkSample(connected=True, received=30, silent_s=0.2)
    # sampled just before the next RTCP packet of a sender with no video (aiortc sends
    # one every 0.5-1.5 s): still a camera that sends nothing
    between_rtcp = LinkSample(connected=True, received=30, silent_s=1.4)
    assert failed_by_network("network", 100, None, P)
    assert failed_by_network("no video received", 0, dead, P)
    assert failed_by_network("no video received", 0, silent, P)
    assert failed_by_network("no video received", 0, garbled, P)
    # RTCP keeps coming but no video: the camera, not the network
    assert not failed_by_network("no video received", 0, camera_off, P)
    assert not failed_by_network("no video received", 0, between_rtcp, P)
    assert not failed_by_network("challenge failed", 100, dead, P)
    assert not failed_by_network("challenges done", 100, silent, P)


def test_the_network_answer_says_network_with_loss_and_freeze_time():
    watch = StallWatch(P)
    watch.check(2.0, last_frame=1.0)
    link = LinkSample(connected=True, received=900, rtp_packets=900, rtp_lost=100)
    detail = network_detail(watch, 9.0, link, restarts=1)
    assert detail["frozen_s"] == 8.0 and detail["stalls"] == 1 and detail["loss"] == 0.1
    error, full = network_error({"ended_by": "network", "network": detail})
    payload = StreamOutcome(error=error, detail=full).envelope()  # as a stream answers
    assert payload["messageString"]["status"] == "4007"
    assert payload["messageString"]["value"].startswith("network")
    assert "8.0 s frozen" in payload["messageString"]["value"]
    assert payload["infoList"] == [] and payload["detail"]["reasons"] == ["network"]


def test_a_frozen_stream_cut_short_by_the_media_timeout_is_network_too():
    # a connected link whose datagrams stopped when the video did
    blackout = LinkSample(connected=True, received=400, rtp_packets=300, silent_s=4.0)
    assert failed_by_network("no video received", 45, blackout, P)
