"""The challenge script: order, deadlines, and cues before the prompt not counting."""

from __future__ import annotations

import random

import pytest

from service.liveness.challenges import ACTIONS, ChallengeScript, parse_challenges, pick_challenges


def test_challenges_met_in_order_pass():
    script = ChallengeScript(["blink", "mouth"], time_per_challenge_s=5)
    first = script.start(1.0)
    assert first.action == "blink" and first.deadline == 6.0
    met, following = script.on_cue("blink", 2.0)
    assert met.action == "blink" and following.action == "mouth" and following.issued_at == 2.0
    met, following = script.on_cue("mouth", 3.0)
    assert met.action == "mouth" and following is None
    assert script.finished and script.passed


def test_cue_before_its_prompt_does_not_count():
    script = ChallengeScript(["blink", "mouth"])
    script.start(1.0)
    assert script.on_cue("mouth", 1.5) == (None, None)  # mouth is not asked yet
    script.on_cue("blink", 2.0)
    assert script.on_cue("mouth", 1.9) == (None, None)  # happened before the mouth prompt
    assert not script.finished


def test_cue_before_start_does_not_count():
    script = ChallengeScript(["blink"])
    assert script.on_cue("blink", 0.5) == (None, None)
    script.start(1.0)
    assert not script.passed


def test_missed_deadline_fails_the_script():
    script = ChallengeScript(["turn_left"], time_per_challenge_s=4)
    script.start(0.0)
    assert not script.tick(3.9)
    assert script.tick(4.1)
    assert script.finished and not script.passed
    assert script.on_cue("turn_left", 4.2) == (None, None)


def test_random_picks_use_known_actions_without_immediate_repeats():
    rng = random.Random(7)
    for _ in range(100):
        picks = pick_challenges(4, rng)
        assert all(a in ACTIONS for a in picks)
        assert all(a != b for a, b in zip(picks, picks[1:]))


@pytest.mark.parametrize("value,expected", [
    ("blink,mouth", ["blink", "mouth"]), (["turn_left"], ["turn_left"]),
    (" Blink , MOUTH ", ["blink", "mouth"]),
])
def test_parse_lists(value, expected):
    assert parse_challenges(value) == expected


@pytest.mark.parametrize("value", ["wink", "", "-1", "99", ["blink"] * 7])
def test_parse_rejects_bad_values(value):
    with pytest.raises(ValueError):
        parse_challenges(value)


def test_parse_count_draws_that_many():
    assert len(parse_challenges("3")) == 3 and parse_challenges(0) == []
