"""Turn, identity (replacement) and planarity state machines on synthetic series, and
the decision policy on synthetic evidence."""

from __future__ import annotations

import itertools
import random

import numpy as np

from service.api.envelope import liveness_items
from service.judging.decision import Challenges, VideoDecisionSettings, decide
from service.liveness.engine import ClipEvidence, CueEvent
from service.liveness.replacement import IdentityTrack, ReplacementSettings
from service.liveness.turns import TurnDetector
from testing.planarity import PlanarityDetector


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def run_turns(yaws: list[float]) -> list[str]:
    detector = TurnDetector()
    return [e.action for i, y in enumerate(yaws)
            if (e := detector.update(i / 10, y)) is not None]


def test_turn_to_the_persons_left_then_back_and_right():
    rest = [0.05] * 10
    left = [0.2, 0.45, 0.5, 0.5]
    right = [-0.2, -0.35, -0.4, -0.4]
    assert run_turns(rest + left + rest + right + rest) == ["turn_left", "turn_right"]


def test_holding_a_turn_counts_once_and_small_sway_never():
    assert run_turns([0.0] * 10 + [0.5] * 30) == ["turn_left"]
    sway = list(0.12 * np.sin(np.arange(60) / 3))
    assert run_turns(sway) == []


def test_turns_are_measured_from_the_persons_resting_yaw():
    # camera off to one side: resting yaw 0.08; a turn back to -0.15 is a right turn of
    # 0.23, not enough; a turn to -0.3 is
    assert run_turns([0.08] * 10 + [-0.15] * 5) == []
    assert run_turns([0.08] * 10 + [-0.3] * 5) == ["turn_right"]


def test_a_person_who_starts_turned_is_not_resting():
    # turned ~45 degrees to their right in the first frames (turns/intel_female.mp4):
    # that is a right turn, and the swing back to the camera is no left turn
    assert run_turns([-0.7] * 10 + [0.0] * 10) == ["turn_right"]
    assert run_turns([-0.7] * 10 + [0.0] * 10 + [0.5] * 5) == ["turn_right", "turn_left"]


def test_identity_track_reports_another_person_after_two_samples():
    rng = np.random.default_rng(1)
    person_a = unit(rng.normal(size=128))
    person_b = unit(rng.normal(size=128))
    track = IdentityTrack(ReplacementSettings(interval_min_s=0.3, interval_max_s=0.7,
                                            steady_interval_min_s=0.3,
                                            steady_interval_max_s=0.7),
                          random.Random(1))
    box = (100.0, 100.0, 120.0, 150.0)
    events = []
    for i in range(40):
        t = i / 10
        who = person_a if t < 2.0 else person_b
        noisy = unit(who + rng.normal(scale=0.03, size=128))
        if track.wants_sample(t, box, 0.0, None):
            event = track.add(t, noisy)
            if event is not None:
                events.append(event.t)
    assert len(events) == 1 and 2.0 <= events[0] <= 3.0


def test_identity_is_sampled_faster_until_the_anchor_is_complete():
    # the anchor's 3 samples come 0.2-0.6 s apart, then 1.5-4.0 s while the track is
    # continuous; a break of the track still asks for a sample on the next frame
    rng = np.random.default_rng(3)
    person = unit(rng.normal(size=128))
    track = IdentityTrack(rng=random.Random(3))
    box = (100.0, 100.0, 120.0, 150.0)
    taken = []
    for i in range(600):
        t = i / 10
        jumped = (300.0, 100.0, 120.0, 150.0) if i == 400 else box
        if track.wants_sample(t, jumped, 0.0, None):
            taken.append(t)
            track.add(t, unit(person + rng.normal(scale=0.03, size=128)))
    gaps = [b - a for a, b in itertools.pairwise(taken)]
    # (the gaps ending at the jump's sample, or after it, are not drawn intervals)
    anchor_gaps = gaps[:2]
    steady_gaps = [g for end, g in zip(taken[3:], gaps[2:]) if end < 39.95]
    assert all(0.2 <= g <= 0.7 for g in anchor_gaps)
    assert len(steady_gaps) >= 8 and all(1.5 <= g <= 4.1 for g in steady_gaps)
    assert max(steady_gaps) > 2.6  # the wider range is really used
    assert 40.0 in taken  # the jump at frame 400 was sampled at once


def test_same_person_with_noise_is_never_a_replacement():
    rng = np.random.default_rng(2)
    person = unit(rng.normal(size=128))
    track = IdentityTrack(rng=random.Random(2))
    for i in range(100):
        t = i / 10
        if track.wants_sample(t, (0.0, 0.0, 100.0, 100.0), 0.0, None):
            assert track.add(t, unit(person + rng.normal(scale=0.05, size=128))) is None
    assert track.event is None and track.min_cosine > 0.6


def test_a_jump_or_a_scale_change_of_the_face_box_asks_for_a_sample_at_once():
    track = IdentityTrack(ReplacementSettings(interval_min_s=10.0, interval_max_s=10.0))
    assert track.wants_sample(0.0, (0.0, 0.0, 100.0, 100.0), 0.0, None)
    track.add(0.0, unit(np.ones(128)))
    assert not track.wants_sample(0.1, (5.0, 0.0, 100.0, 100.0), 0.0, None)
    assert track.wants_sample(0.2, (300.0, 0.0, 100.0, 100.0), 0.0, None)  # 3 face widths
    track.add(0.2, unit(np.ones(128)))
    assert not track.wants_sample(0.3, (300.0, 0.0, 110.0, 110.0), 0.0, None)
    assert track.wants_sample(0.4, (300.0, 0.0, 150.0, 150.0), 0.0, None)  # 1.36 x the size


def test_identity_is_sampled_only_near_frontal_and_a_due_sample_waits_for_it():
    track = IdentityTrack(ReplacementSettings(interval_min_s=10.0, interval_max_s=10.0))
    box = (0.0, 0.0, 100.0, 100.0)
    assert not track.wants_sample(0.0, box, 0.6, None)  # turned ~35 degrees: not yet
    assert track.wants_sample(0.1, box, 0.1, None)
    track.add(0.1, unit(np.ones(128)))
    assert not track.wants_sample(0.2, (300.0, 0.0, 100.0, 100.0), -0.7, None)  # jump, turned
    assert not track.wants_sample(0.3, (300.0, 0.0, 100.0, 100.0), -0.5, None)
    assert track.wants_sample(0.4, (300.0, 0.0, 100.0, 100.0), -0.1, None)  # deferred, now due
    assert track.deferred == 3



def test_a_change_of_look_asks_for_a_sample_at_once():
    rng = np.random.default_rng(3)
    look = rng.normal(size=256).astype(np.float32)
    look = (look - look.mean()) / look.std()
    track = IdentityTrack(ReplacementSettings(interval_min_s=10.0, interval_max_s=10.0))
    box = (0.0, 0.0, 100.0, 100.0)
    assert track.wants_sample(0.0, box, 0.0, look)
    track.add(0.0, unit(np.ones(128)))
    assert not track.wants_sample(0.1, box, 0.0, look + rng.normal(scale=0.2, size=256))
    assert track.wants_sample(0.2, box, 0.0, rng.normal(size=256).astype(np.float32))


def test_a_doubtful_sample_stays_out_of_the_anchor_and_a_decided_track_stops_sampling():
    rng = np.random.default_rng(4)
    a, other = unit(rng.normal(size=128)), unit(rng.normal(size=128))  # cosine ~0
    across = unit(other - a * float(np.dot(other, a)))  # orthogonal to a
    doubtful = unit(0.55 * a + np.sqrt(1 - 0.55**2) * across)  # cosine 0.55 to a
    track = IdentityTrack(ReplacementSettings(interval_min_s=0.1, interval_max_s=0.1))
    box = (0.0, 0.0, 100.0, 100.0)
    track.add(0.0, a)
    track.add(0.1, doubtful)  # above other_cosine: not another person, but not added
    assert track.anchor is not None and float(np.dot(track.anchor, a)) > 0.999
    track.add(0.2, other)
    assert track.add(0.3, other) is not None
    assert not track.wants_sample(5.0, box, 0.0, None) and track.samples == 4


def face_landmarks(nose_dx: float, squeeze: float) -> np.ndarray:
    """Minimal 478-point array with the points planarity reads: eye corners, nose tip,
    nose base; `squeeze` shrinks the face horizontally (foreshortening)."""
    lm = np.zeros((478, 3), np.float32)
    for idx, x in ((33, -60), (133, -20), (362, 20), (263, 60)):
        lm[idx, :2] = (200 + x * squeeze, 200)
    lm[1, :2] = (200 + nose_dx, 260)
    lm[2, :2] = (200 + nose_dx * 0.5, 280)
    return lm


def test_planarity_flat_picture_vs_turning_head():
    flat, head = PlanarityDetector(), PlanarityDetector()
    for i in range(40):
        phase = np.sin(i / 4)
        squeeze = 1.0 - 0.3 * abs(phase)
        flat.update(i * 0.25, face_landmarks(0.0, squeeze))  # nose stays put
        head.update(i * 0.25, face_landmarks(30.0 * phase, squeeze))  # nose swings
    assert flat.planar and not head.planar
    still = PlanarityDetector()
    for i in range(40):
        still.update(i * 0.25, face_landmarks(0.0, 1.0))
    assert not still.planar and still.median_ratio is None  # no motion: says nothing


def evidence(events: list[str], tracked: int = 50, analysed: int = 50,
             samples: int = 3) -> ClipEvidence:
    return ClipEvidence(analysed=analysed, with_face=tracked, competing=0,
                        events=[CueEvent(k, 1.0 + i, {}) for i, k in enumerate(events)],
                        best=None, identity={"samples": samples},
                        duration_s=5.0, mouth_moved=events.count("mouth") >= 2)


class Pad:
    def __init__(self, p: float) -> None:
        self.live_probability, self.live = p, p >= 0.5

    def detail(self) -> dict:
        return {"live_probability": self.live_probability}


def test_policy_live_needs_an_active_cue_and_a_live_best_frame():
    policy = VideoDecisionSettings()
    live = decide(evidence(["blink"]), Pad(0.97), "", policy)
    assert live.live and live.value == 97.0 and live.cues.blinked and not live.cues.mouth_moved
    no_cue = decide(evidence([]), Pad(0.97), "", policy)
    assert not no_cue.live and no_cue.value < 50 and "no blink or mouth movement" in no_cue.words
    attack = decide(evidence(["blink", "mouth", "mouth"]), Pad(0.2), "", policy)
    assert not attack.live and attack.cues.mouth_moved


def test_policy_replacement_poor_tracking_and_unjudged_best_frame_are_not_live():
    policy = VideoDecisionSettings()
    assert decide(evidence(["blink", "replacement"]), Pad(0.99), "", policy).cues.replaced
    assert not decide(evidence(["blink", "replacement"]), Pad(0.99), "", policy).live
    assert not decide(evidence(["blink"], tracked=20), Pad(0.99), "", policy).live
    unjudged = decide(evidence(["blink"]), None, "image too blurred", policy)
    assert not unjudged.live and unjudged.value == 0.0


def test_policy_live_needs_the_identity_checked_at_least_twice():
    policy = VideoDecisionSettings()
    assert decide(evidence(["blink"], samples=2), Pad(0.97), "", policy).live
    for samples in (0, 1):
        once = decide(evidence(["blink"], samples=samples), Pad(0.97), "", policy)
        assert not once.live and "identity checked fewer than 2 times" in once.words
    streamed = decide(evidence([], samples=1), Pad(0.97), "", policy, Challenges.MET)
    assert not streamed.live


def test_policy_in_a_stream_uses_the_challenges():
    policy = VideoDecisionSettings()
    assert decide(evidence([]), Pad(0.9), "", policy, Challenges.MET).live
    failed = decide(evidence(["blink"]), Pad(0.9), "", policy, Challenges.NOT_MET)
    assert not failed.live and "challenges not met" in failed.words


def test_veritems_have_the_vendor_order_and_strings():
    items = liveness_items(decide(evidence(["blink"]), Pad(0.876), "", VideoDecisionSettings()))
    assert [(i["desc"], i["content"]) for i in items] == [
        ("Decision value", "87.6"), ("Live or not", "Living body"),
        ("Whether there is a replacement", "no"), ("Whether there is blinking", "yes"),
        ("Whether there is a mouth", "no")]


def test_a_best_frame_of_someone_else_is_a_replacement_at_the_decision():
    # the face compared with the ID portrait must be the person the samples followed
    rng = np.random.default_rng(4)
    person_a, person_b = unit(rng.normal(size=128)), unit(rng.normal(size=128))
    for best, replaced in ((person_a, False), (person_b, True)):
        track = IdentityTrack(rng=random.Random(4))
        for i in range(100):
            t = i / 10
            if track.wants_sample(t, (0.0, 0.0, 100.0, 100.0), 0.0, None):
                track.add(t, unit(person_a + rng.normal(scale=0.03, size=128)))
        assert track.event is None
        event = track.best_frame(5.0, unit(best + rng.normal(scale=0.03, size=128)))
        assert (event is not None) == replaced == (track.event is not None)
        assert (track.best_frame_cosine < 0.5) == replaced
