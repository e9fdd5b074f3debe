"""The challenge script's timing rules on synthetic action-state series.

A simulated person is driven frame by frame at the stream rate (10 fps) on the same
clock as the script: the script's prompts and releases are what it reacts to, so the
tests exercise the randomness (pauses, holds) the way a client meets it, with a seeded
rng (testing/simulated_person.py). Real frames for the states themselves are in
test_holds.py.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from service.liveness.challenges.actions import ACTIONS, HOLD_ACTIONS, LEGACY_ACTIONS
from service.liveness.challenges.events import Event, Failed, Met, Prompt, Release
from service.liveness.challenges.script import ChallengeScript
from service.liveness.challenges.sets import parse_challenges, pick_challenges
from service.liveness.engine import CueEvent
from service.liveness.holds import ActionState
from service.rtc import messages as msg
from testing.simulated_person import (
    FPS,
    PARAMS,
    Behaviour,
    Log,
    drive,
    frame,
    one_action_reel,
    person,
    reel,
)


def reason(script: ChallengeScript) -> str | None:
    return script.failure.reason if script.failure else None


# --- passing -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_person_following_the_prompts_passes(seed):
    actions = ["eyes_closed", "mouth_open", "turn_left", "turn_right"]
    script, log = drive(actions, person(react_s=0.5, release_s=0.6), seed=seed)
    assert script.finished and script.passed and script.failure is None
    kinds = [type(e).__name__ for _, e in log.events]
    assert kinds == ["Prompt", "Release", "Met"] * 4
    assert [e.action for _, e in log.of(Prompt)] == actions
    assert [e.index for _, e in log.of(Met)] == [0, 1, 2, 3]
    for record in script.to_json():
        assert record["met_at"] is not None and record["failed"] is None


@pytest.mark.parametrize("react,release", [(0.3, 0.3), (1.2, 1.2), (2.2, 1.6)])
def test_reactions_anywhere_inside_the_windows_pass(react, release):
    script, _ = drive(["mouth_open", "eyes_closed"], person(react, release))
    assert script.passed


def test_the_release_comes_a_random_hold_after_the_onset():
    holds = []
    for seed in range(40):
        script, log = drive(["mouth_open"], person(react_s=0.5), seed=seed)
        assert script.passed
        (prompted, _), (released, _) = log.of(Prompt)[0], log.of(Release)[0]
        holds.append(released - (prompted + 0.5))
    # never told in advance, drawn from hold_min..hold_max (plus at most a frame)
    assert all(PARAMS.hold_min_s - 1e-6 <= h <= PARAMS.hold_max_s + 0.1 + 1e-6 for h in holds)
    assert max(holds) - min(holds) > 0.8 * (PARAMS.hold_max_s - PARAMS.hold_min_s)


def test_prompts_come_after_a_random_pause():
    firsts, gaps = set(), []
    for seed in range(30):
        script, log = drive(["turn_left", "mouth_open"], person(), seed=seed)
        assert script.passed
        (first, _), (second, _) = log.of(Prompt)
        released_first = script.to_json()[0]["ended_at"]  # the first action seen off
        firsts.add(round(first, 1))
        gaps.append(second - released_first)
        assert PARAMS.pause_min_s <= first <= PARAMS.pause_max_s + 0.1 + 1e-6
    assert all(PARAMS.pause_min_s - 1e-6 <= g <= PARAMS.pause_max_s + 0.1 + 1e-6 for g in gaps)
    assert len(firsts) > 5


def test_nothing_happens_before_begin_and_without_challenges():
    script = ChallengeScript(["eyes_closed"], PARAMS, random.Random(0))
    assert not script.started and script.tick(100.0) == []
    empty = ChallengeScript([], PARAMS, random.Random(0))
    assert empty.finished and empty.passed and empty.tick(1.0) == []


# --- onsets ----------------------------------------------------------------------------


def test_an_onset_faster_than_a_person_is_too_early():
    script, log = drive(["mouth_open"], person(react_s=0.1))
    assert reason(script) == "too_early"
    assert log.events[-1][1] == Failed(0, "mouth_open", "too_early")


def test_an_action_already_on_at_the_prompt_is_too_early():
    always = person(also=lambda t, log: {"turn_left"})
    script, _ = drive(["turn_left"], always)
    assert reason(script) == "too_early"


def test_an_onset_after_the_window_is_too_late():
    script, _ = drive(["mouth_open"], person(react_s=PARAMS.reaction_max_s + 0.5))
    assert reason(script) == "too_late"


def test_doing_nothing_is_too_late():
    script, log = drive(["turn_right"], lambda t, log: (frame(t), ()))
    assert reason(script) == "too_late"
    (prompted, _), (failed_at, _) = log.of(Prompt)[0], log.of(Failed)[0]
    assert failed_at > prompted + PARAMS.reaction_max_s


def test_frames_stopping_is_too_late_by_the_clock():
    script = ChallengeScript(["eyes_closed"], PARAMS, random.Random(0))
    script.begin(0.0)
    script.tick(PARAMS.pause_max_s)
    assert [type(e) for e in script.tick(30.0)] == [Failed]
    assert reason(script) == "too_late"


def test_another_action_inside_the_window_is_wrong():
    script, _ = drive(["eyes_closed"], person(does="mouth_open"))
    assert reason(script) == "wrong_action"


def test_another_action_during_the_hold_is_wrong():
    def extra(t: float, log: Log) -> set[str]:
        prompt = log.prompt
        return {"turn_left"} if prompt and t >= prompt[0] + 1.0 else set()
    script, _ = drive(["mouth_open"], person(react_s=0.5, also=extra))
    assert reason(script) == "wrong_action"


def test_another_action_held_before_the_prompt_is_not_an_onset_in_the_window():
    # mouth_open held through the whole session: not started inside any window
    script, _ = drive(["turn_left"], person(also=lambda t, log: {"mouth_open"}))
    assert script.passed


# --- natural blinks ----------------------------------------------------------------


def blinks(every_s: float, length_s: float, phase_s: float = 0.0
           ) -> Callable[[float, Log], set[str]]:
    """Eye closures of `length_s` every `every_s`: a person blinking naturally."""
    return lambda t, log: {"eyes_closed"} if (t - phase_s) % every_s < length_s - 1e-9 else set()


@pytest.mark.parametrize("action", ["mouth_open", "turn_left", "eyes_closed"])
def test_natural_blinks_never_fail_anything(action):
    # a blink of 0.3 s every 0.9 s, whatever the prompt asks
    for phase in (0.0, 0.3, 0.6):
        script, _ = drive([action, "turn_right"], person(also=blinks(0.9, 0.3, phase)))
        assert script.passed, (action, phase, reason(script))


def test_a_blink_is_not_an_eyes_closed_onset():
    script, _ = drive(["eyes_closed"], lambda t, log: (frame(t, *blinks(1.0, 0.5)(t, log)), ()))
    assert reason(script) == "too_late"


def test_a_long_blink_just_before_the_closure_does_not_shift_the_onset():
    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        prompt = log.prompt
        if prompt and not log.done(0) and prompt[0] + 0.05 <= t < prompt[0] + 0.55:
            return frame(t, "eyes_closed"), ()  # a 0.5 s blink right at the prompt
        return person(react_s=0.8)(t, log)
    script, _ = drive(["eyes_closed"], behaviour)
    assert script.passed


# --- pauses and recordings ----------------------------------------------------------


def after_first_met(start_s: float, length_s: float, action: str
                    ) -> Callable[[float, Log], set[str]]:
    def extra(t: float, log: Log) -> set[str]:
        mets = log.of(Met)
        if mets and mets[0][0] + start_s <= t < mets[0][0] + start_s + length_s:
            return {action}
        return set()
    return extra


def test_an_action_in_the_pause_between_challenges_is_too_early():
    behaviour = person(also=after_first_met(0.1, 0.6, "mouth_open"))
    script, log = drive(["turn_left", "eyes_closed"], behaviour)
    assert reason(script) == "too_early"
    assert log.events[-1][1] == Failed(1, "eyes_closed", "too_early")
    assert len(log.of(Prompt)) == 1  # failed before its prompt


def test_settling_in_the_first_pause_is_not_failed():
    settle = person(also=lambda t, log: {"turn_left"} if 0.1 <= t < 0.7 else set())
    script, _ = drive(["mouth_open"], settle)
    assert script.passed


@pytest.mark.parametrize("on_s,gap_s", [(2.0, 0.0), (2.0, 0.5), (2.75, 0.5)])
def test_an_action_reel_ignoring_the_prompts_fails(on_s, gap_s):
    rng = random.Random(11)
    for seed in range(40):
        script, _ = drive(pick_challenges(3, rng), reel(on_s, gap_s, rng.uniform(0, 20)),
                          seed=seed)
        assert script.finished and not script.passed


def test_a_recording_blinking_and_talking_fails():
    def recording(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        on = blinks(3.1, 0.3)(t, log) | ({"mouth_open"} if t % 0.5 < 0.1 else set())
        cues = (CueEvent("blink", t, {"start": t - 0.2}),) if abs(t % 3.1 - 0.4) < 0.05 else ()
        return frame(t, *on), cues
    for actions in (["eyes_closed"], ["mouth_open"], ["turn_left"]):
        script, _ = drive(actions, recording)
        assert reason(script) == "too_late", actions


# --- holds ---------------------------------------------------------------------------


def test_stopping_before_the_release_breaks_the_hold():
    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        prompt = log.prompt
        on = prompt is not None and prompt[0] + 0.5 <= t < prompt[0] + 1.2
        return frame(t, *(["mouth_open"] if on else [])), ()
    script, _ = drive(["mouth_open"], behaviour)
    assert reason(script) == "hold_broken"


def gaps(off: set[float], lost: set[float]) -> Behaviour:
    """The person holds as asked; frames at these offsets from the onset read off, or
    have no face."""
    base = person(react_s=0.5)

    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        state, cues = base(t, log)
        if log.prompt is not None and not log.done(0) and log.released_at(0) is None:
            since = round(t - log.prompt[0] - 0.5, 1)
            if since in off:
                return frame(t), cues
            if since in lost:
                return frame(t, face=False), cues
        return state, cues
    return behaviour


def test_short_dropouts_inside_a_hold_are_tolerated():
    # two frames reading off (0.2 s < dropout_s) and 0.5 s without a face, inside a
    # hold long enough to hold them
    long_hold = replace(PARAMS, hold_min_s=2.0, hold_max_s=2.5)
    script, _ = drive(["eyes_closed"], gaps(off={0.8, 0.9}, lost={1.0, 1.1, 1.2, 1.3, 1.4}),
                      params=long_hold)
    assert script.passed


def test_an_off_gap_of_dropout_length_breaks_the_hold():
    # mouth_open is an onset after 0.4 s; the release comes >= 1.0 s after the onset
    script, _ = drive(["mouth_open"], gaps(off={0.6, 0.7, 0.8, 0.9, 1.0}, lost=set()))
    assert reason(script) == "hold_broken"


def test_losing_the_face_for_long_breaks_the_hold():
    lost = {round(0.6 + i / 10, 1) for i in range(int(PARAMS.face_lost_max_s * 10) + 2)}
    script, _ = drive(["turn_left"], gaps(off=set(), lost=lost))
    assert reason(script) == "hold_broken"


# --- releases ------------------------------------------------------------------------


def test_a_release_faster_than_a_person_is_too_early():
    script, _ = drive(["mouth_open"], person(release_s=0.1))
    assert reason(script) == "too_early"


def test_a_release_after_its_window_is_too_late():
    script, _ = drive(["eyes_closed"], person(release_s=PARAMS.release_max_s + 0.5))
    assert reason(script) == "too_late"


def test_never_releasing_is_too_late():
    script, _ = drive(["turn_left"], person(release_s=100.0))
    assert reason(script) == "too_late"


def test_a_blink_just_after_opening_the_eyes_does_not_make_the_release_late():
    def blink_after(t: float, log: Log) -> set[str]:
        released = log.released_at(0)
        return {"eyes_closed"} if released and released + 1.7 <= t < released + 2.1 else set()
    script, _ = drive(["eyes_closed"], person(release_s=1.6, also=blink_after))
    assert script.passed


def test_the_record_says_when_each_step_happened():
    script, log = drive(["mouth_open"], person(react_s=0.5, release_s=0.6))
    record = script.to_json()[0]
    prompted, released = log.of(Prompt)[0][0], log.of(Release)[0][0]
    assert record["prompted_at"] == round(prompted, 3)
    assert record["onset_at"] == round(prompted + 0.5, 3)
    assert record["release_at"] == round(released, 3)
    assert record["ended_at"] == pytest.approx(released + 0.6, abs=0.11)


# --- legacy blink / mouth ------------------------------------------------------------


def cue_person(kind: str, starts_after: float, length_s: float = 0.2) -> Behaviour:
    """Emits one `kind` cue that started `starts_after` the prompt, when it ends."""
    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        if log.prompt is None or log.done(log.prompt[1].index):
            return frame(t), ()
        start = log.prompt[0] + starts_after
        end = start + length_s
        if abs(t - end) < 0.05:
            return frame(t), (CueEvent(kind, end, {"start": start}),)
        return frame(t), ()
    return behaviour


@pytest.mark.parametrize("kind", LEGACY_ACTIONS)
def test_legacy_action_inside_the_window_is_met(kind):
    script, log = drive([kind], cue_person(kind, 0.7))
    assert script.passed
    assert [type(e).__name__ for _, e in log.events] == ["Prompt", "Met"]


@pytest.mark.parametrize("kind", LEGACY_ACTIONS)
def test_legacy_action_after_the_window_is_too_late(kind):
    script, _ = drive([kind], cue_person(kind, PARAMS.reaction_max_s + 0.3))
    assert reason(script) == "too_late"


def test_legacy_mouth_moving_at_the_prompt_is_too_early():
    script, _ = drive(["mouth"], cue_person("mouth", -0.2, length_s=0.4))
    assert reason(script) == "too_early"


def test_legacy_blink_right_at_the_prompt_is_ignored_not_failed():
    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        early = cue_person("blink", 0.05)(t, log)
        return early if early[1] else cue_person("blink", 1.0)(t, log)
    script, _ = drive(["blink"], behaviour)
    assert script.passed


def test_legacy_other_cues_do_not_count():
    script, _ = drive(["blink"], cue_person("mouth", 0.7))
    assert reason(script) == "too_late"


def test_legacy_blink_and_a_turn_in_its_window_is_wrong():
    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        state, cues = cue_person("blink", 2.0)(t, log)
        turned = log.prompt is not None and t >= log.prompt[0] + 0.5
        return (frame(t, "turn_left") if turned else state), cues
    script, _ = drive(["blink"], behaviour)
    assert reason(script) == "wrong_action"


# --- messages, sets, parsing ---------------------------------------------------------


def test_messages_have_the_spec_shapes():
    """The script's events reach the client as the spec 2.1 messages (one encoding, in
    service.rtc.messages)."""
    def wire(event):
        return msg.to_json(msg.from_script(event))

    assert wire(Prompt(0, 3, "eyes_closed", 2500)) == {
        "type": "challenge", "action": "eyes_closed", "index": 0, "total": 3,
        "window_ms": 2500}
    assert wire(Release(1, "mouth_open")) == {
        "type": "release", "action": "mouth_open", "index": 1}
    assert wire(Met(2, "turn_left")) == {
        "type": "challenge_met", "action": "turn_left", "index": 2}
    assert wire(Failed(0, "turn_right", "hold_broken")) == {
        "type": "challenge_failed", "action": "turn_right", "index": 0,
        "reason": "hold_broken"}


def test_prompt_window_is_the_reaction_window():
    _, log = drive(["mouth_open", "turn_left"], person())
    assert [e.window_ms for _, e in log.of(Prompt)] == [2500, 2500]
    assert [e.total for _, e in log.of(Prompt)] == [2, 2]


def test_default_set_is_three_hold_actions_without_repeats():
    assert PARAMS.default_count == 3
    rng = random.Random(7)
    seen = set()
    for _ in range(200):
        picks = pick_challenges(PARAMS.default_count, rng)
        assert len(picks) == 3 and all(a in HOLD_ACTIONS for a in picks)
        assert all(a != b for a, b in itertools.pairwise(picks))
        seen.update(picks)
    assert seen == set(HOLD_ACTIONS)


@pytest.mark.parametrize("value,expected", [
    (["turn_left", "eyes_closed", "turn_left"], ["turn_left", "eyes_closed", "turn_left"]),
    (" Eyes_Closed , MOUTH_open,turn_RIGHT ", ["eyes_closed", "mouth_open", "turn_right"]),
    ("eyes_closed,blink,turn_right,mouth_open", ["eyes_closed", "blink", "turn_right",
                                                 "mouth_open"]),
])
def test_parse_lists(value, expected):
    assert parse_challenges(value) == expected


@pytest.mark.parametrize("value", ["blink", "blink,mouth", "mouth,mouth", ["turn_left"],
                                   "eyes_closed,eyes_closed,eyes_closed", "1",
                                   "eyes_closed,blink"])
def test_sets_are_completed_to_three_hold_actions_of_two_kinds(value):
    """A legacy action is met by any recording's next blink or word about half the time,
    and a recording repeating one action in the protocol's rhythm meets most prompts for
    it: every set gets hold actions it cannot predict."""
    assert (PARAMS.min_holds, PARAMS.min_kinds) == (3, 2)
    asked = value if isinstance(value, list) or value.isdigit() else value.split(",")
    for seed in range(50):
        got = parse_challenges(value, rng=random.Random(seed))
        if not str(value).isdigit():
            assert got[:len(asked)] == asked  # what was asked, in its order, first
        holds = [a for a in got if a in HOLD_ACTIONS]
        assert len(holds) >= 3 and len(set(holds)) >= 2
        added = got[len(asked):] if not str(value).isdigit() else got
        assert len(added) <= 3
        for before, after in itertools.pairwise(got[len(asked) - 1:] if added else []):
            assert after != before and (before, after) not in (("blink", "eyes_closed"),
                                                               ("mouth", "mouth_open"))


def test_a_kiosk_may_leave_the_turns_out():
    kiosk = replace(PARAMS, actions=("eyes_closed", "mouth_open"))
    for seed in range(30):
        rng = random.Random(seed)
        for value in (None, "1", "blink", "eyes_closed"):
            got = parse_challenges(value, kiosk, rng)
            assert not any(a.startswith("turn_") for a in got)
            assert {"eyes_closed", "mouth_open"} <= set(got) or value == "blink"
    only_eyes = replace(PARAMS, actions=("eyes_closed",))
    assert parse_challenges(None, only_eyes) == ["eyes_closed"] * 3
    with pytest.raises(ValueError):
        replace(PARAMS, actions=("blink",))


@pytest.mark.parametrize("on_s,gap_s", [(2.0, 3.0), (1.5, 2.0), (2.0, 1.0), (2.5, 2.5)])
def test_a_recording_of_the_one_asked_action_fails_the_completed_set(on_s, gap_s):
    """Made in the protocol's rhythm it meets most prompts for its action (the next
    prompt comes a pause after its own release); the completed set asks another."""
    rng = random.Random(3)
    for seed in range(40):
        actions = parse_challenges("eyes_closed", rng=rng)
        script, _ = drive(actions, one_action_reel("eyes_closed", on_s, gap_s,
                                                   rng.uniform(0, 10)), seed=seed)
        assert script.finished and not script.passed


def test_the_minimum_can_be_turned_off():
    params = replace(PARAMS, min_holds=0, min_kinds=0)
    assert parse_challenges("blink", params) == ["blink"]
    assert parse_challenges("eyes_closed,eyes_closed", params) == ["eyes_closed"] * 2
    assert len(parse_challenges("1", params, random.Random(0))) == 1


@pytest.mark.parametrize("value", ["wink", "-1", "99", ["blink"] * 7, "open_mouth",
                                   "blink,,wink"])
def test_parse_rejects_bad_values(value):
    with pytest.raises(ValueError):
        parse_challenges(value)


def test_parse_count_draws_that_many_hold_actions_but_at_least_the_minimum():
    picks = parse_challenges("3", rng=random.Random(1))
    assert len(picks) == 3 and all(a in HOLD_ACTIONS for a in picks)
    assert len(parse_challenges("1", rng=random.Random(1))) == PARAMS.min_holds
    assert len(parse_challenges("5", rng=random.Random(1))) == 5
    assert parse_challenges(0) == []
    assert set(ACTIONS) == set(HOLD_ACTIONS) | set(LEGACY_ACTIONS)


def test_no_field_is_the_default_set():
    for empty in (None, ""):
        picks = parse_challenges(empty, rng=random.Random(3))
        assert len(picks) == PARAMS.default_count and all(a in HOLD_ACTIONS for a in picks)


def test_unknown_action_in_a_script_is_refused():
    with pytest.raises(ValueError):
        ChallengeScript(["wink"], PARAMS, random.Random(0))


# --- fewer frames while the script waits (SessionSettings.waiting_fps) ----------------

WAITING_FPS = 5.0  # SessionSettings.waiting_fps


def test_frames_are_analysed_at_the_lower_rate_only_in_pauses_and_holds():
    long_pauses = replace(PARAMS, pause_min_s=1.8, pause_max_s=2.0)
    script = ChallengeScript(["mouth_open", "turn_left", "eyes_closed"], long_pauses,
                             random.Random(3))
    assert script.frame_due(0.1, 0.0, FPS, WAITING_FPS)  # idle
    script.begin(0.0)
    phases, log, last = [], Log(), None
    behaviour = person()
    for i in range(int(30 * FPS)):
        t = i / FPS
        log.add(t, script.tick(t))
        due = script.frame_due(t, last, FPS, WAITING_FPS)
        prompts = log.of(Prompt)
        phases.append((script._phase, len(prompts), due,
                       script._prompt_due - t if script._phase == "pause" else None))
        if due:
            last = t
            log.add(t, script.observe(*behaviour(t, log)))
        if script.finished:
            break
    assert script.passed

    def dues(phase: str, prompted: set[int] | None = None) -> list[bool]:
        return [due for p, n, due, _ in phases
                if p == phase and (prompted is None or n in prompted)]
    # every frame in the first pause, the reaction and the release windows
    assert all(dues("pause", {0})) and all(dues("onset")) and all(dues("release"))
    # every other one in holds, and in later pauses but their last 1.1 s
    held = dues("hold")
    assert 0.4 <= sum(held) / len(held) <= 0.6
    late = [due for p, n, due, left in phases if p == "pause" and n and left <= 1.1]
    early = [due for p, n, due, left in phases if p == "pause" and n and left > 1.1]
    assert all(late) and early and not all(early)


@pytest.mark.parametrize("seed", range(20))
def test_people_pass_and_their_times_are_the_same_at_the_lower_waiting_rate(seed):
    rng = random.Random(seed)
    actions = pick_challenges(3, rng)
    react, release = rng.uniform(0.3, 2.2), rng.uniform(0.3, 1.6)
    full, full_log = drive(actions, person(react, release), seed)
    slow, slow_log = drive(actions, person(react, release), seed, waiting_fps=WAITING_FPS)
    assert full.passed and slow.passed
    assert slow.to_json() == full.to_json()  # prompts, onsets, releases, ends: same times
    assert slow_log.analysed < full_log.analysed  # ~10% fewer: bench/analysis_rate.py


def test_an_action_in_the_pause_is_still_too_early_at_the_lower_rate():
    for action in HOLD_ACTIONS:
        script, _ = drive(["mouth_open", "turn_left"],
                          person(also=after_first_met(0.3, 1.0, action)),
                          waiting_fps=WAITING_FPS)
        assert reason(script) == "too_early", action


@pytest.mark.parametrize("on_s,gap_s", [(2.0, 0.0), (2.0, 0.5), (2.75, 0.5)])
def test_reels_still_fail_at_the_lower_rate(on_s, gap_s):
    rng = random.Random(11)
    for seed in range(40):
        script, _ = drive(pick_challenges(3, rng), reel(on_s, gap_s, rng.uniform(0, 20)),
                          seed=seed, waiting_fps=WAITING_FPS)
        assert script.finished and not script.passed


# --- a stall of the video (ChallengeScript.resume, service/rtc/stalls.py) --------------


def step(script: ChallengeScript, t: float, *on: str) -> list[Event]:
    """One pass of the runner: the clock, then a frame showing `on`."""
    return script.tick(t) + script.observe(frame(t, *on))


def first_prompt(script: ChallengeScript, t: float = 0.0) -> float:
    script.begin(t)
    while not any(isinstance(e, Prompt) for e in step(script, t)):
        t = round(t + 0.1, 3)
    return t


def test_a_stall_in_a_hold_begins_the_challenge_again_after_the_person_let_go():
    script = ChallengeScript(["eyes_closed", "mouth_open"], PARAMS, random.Random(3))
    prompted = first_prompt(script)
    t = prompted
    while t < prompted + 2.0:  # shut from 0.5 s after the prompt: a hold under way
        t = round(t + 0.1, 3)
        step(script, t, *(["eyes_closed"] if t >= prompted + 0.5 else []))
    # the video stalls for 3 s (no tick, no frame), then the eyes are still shut
    t += 3.0
    assert script.resume(t) == [Release(0, "eyes_closed")]
    record = script.to_json()[0]
    assert record["restarts"] == 1 and record["prompted_at"] is None
    # no prompt while the eyes stay shut, however long (up to the bound) ...
    for _ in range(20):
        t = round(t + 0.1, 3)
        assert not any(isinstance(e, Prompt) for e in step(script, t, "eyes_closed"))
    # ... then, the eyes open for a while, a fresh pause and the same prompt again
    events: list[Event] = []
    opened = t
    while not events:
        t = round(t + 0.1, 3)
        events = step(script, t)
    assert events == [Prompt(0, 2, "eyes_closed", 2500)]
    assert t - opened >= PARAMS.onset_min_s + PARAMS.pause_min_s - 0.1
    # and it is judged as usual from there: a reaction, a hold, a release
    reprompted = t
    while not script.finished or script.to_json()[0]["met_at"] is None:
        t = round(t + 0.1, 3)
        released = script.to_json()[0]["release_at"]
        shut = t >= reprompted + 0.6 and (released is None or t < released + 0.6)
        events = step(script, t, *(["eyes_closed"] if shut else []))
        if any(isinstance(e, Met) for e in events) or t > reprompted + 10:
            break
    assert script.to_json()[0]["met_at"] is not None, script.to_json()[0]
    assert script.failure is None


def test_a_stall_before_any_prompt_only_draws_a_fresh_pause():
    script = ChallengeScript(["eyes_closed"], PARAMS, random.Random(4))
    script.begin(0.0)
    step(script, 0.1)
    assert script.resume(2.0) == []  # nothing was asked: nothing to release
    assert script.restarts == 0 and script.to_json()[0]["restarts"] == 0


def test_a_failed_challenge_stays_failed_after_a_stall():
    script = ChallengeScript(["eyes_closed"], PARAMS, random.Random(5))
    prompted = first_prompt(script)
    t = prompted
    events: list[Event] = []
    while not events:  # shut 0.1 s after the prompt: no one reacts that fast
        t = round(t + 0.1, 3)
        events = step(script, t, "eyes_closed")
    assert events == [Failed(0, "eyes_closed", "too_early")]
    assert script.resume(t + 3.0) == [] and script.finished and not script.passed
