"""The challenge script of a streaming session: the state machine of the challenges.

Pure and synchronous. Two inputs on the same session clock: `tick(now)` (the runner's
clock: prompts after their pause, releases after their hold, timeouts) and
`observe(state, cues)` for every analysed frame (holds.ActionState, and the engine's
cue events for the legacy `blink` / `mouth` actions, which are met by a cue starting
inside the reaction window). Frames reach `observe` after their analysis, so everything
is judged by frame times, and timeouts wait `settle_s` for late frames. Both return the
events to tell the client, in order; randomness comes only from the injected `rng`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from service.liveness.challenges.actions import (
    ACTIONS,
    COUNTERPART,
    HOLD_ACTIONS,
    LEGACY_ACTIONS,
    is_on,
)
from service.liveness.challenges.events import Event, Failed, Met, Prompt, Release
from service.liveness.challenges.runs import ActionRun
from service.liveness.challenges.settings import ChallengeSettings
from service.liveness.engine import CueEvent
from service.liveness.holds import ActionState


@dataclass
class _Challenge:
    """One challenge's record (session clock times; None: not happened)."""

    action: str
    prompted_at: float | None = None
    onset_at: float | None = None
    release_due: float | None = None  # secret: never told to the client
    released_at: float | None = None  # when the release was sent
    ended_at: float | None = None  # when the action ended after the release
    first_off: float | None = None  # first frame after the release reading it off
    met_at: float | None = None
    failed: str | None = None
    restarts: int = 0  # times it began again after the video stalled (resume)

    def to_json(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)
        return {"action": self.action, "prompted_at": r(self.prompted_at),
                "onset_at": r(self.onset_at), "release_at": r(self.released_at),
                "ended_at": r(self.ended_at), "met_at": r(self.met_at),
                "failed": self.failed, "restarts": self.restarts}


class ChallengeScript:
    """Phases of the current challenge: "pause" (until its prompt), "onset" (prompted,
    waiting for the action to start), "hold" (started; the release is due at a secret
    time), "release" (release sent, waiting for the action to end); after the last one
    or a failure, "done". Before `begin`, "idle"."""

    def __init__(self, actions: list[str], params: ChallengeSettings,
                 rng: random.Random) -> None:
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise ValueError(f"unknown challenge actions: {unknown}")
        self.params = params
        self._rng = rng
        self._challenges = [_Challenge(a) for a in actions]
        self._index = 0
        self._phase = "idle" if actions else "done"
        self._prompt_due = 0.0
        # In the pause after a met challenge, no action started since this time (that
        # challenge's prompt) may be confirmed: None in the first pause.
        self._still_since: float | None = None
        self._now = float("-inf")  # latest time seen from either input
        self._runs = {a: ActionRun() for a in HOLD_ACTIONS}
        self.failure: Failed | None = None
        # after a resume: no prompt is scheduled until no action reads on (or this time)
        self._settle_until: float | None = None
        self._settle_off: float | None = None  # first frame since then with no action on
        self.restarts = 0  # resumes that began a challenge again

    # --- what the runner reads ---

    @property
    def started(self) -> bool:
        return self._phase != "idle"

    @property
    def finished(self) -> bool:
        return self._phase == "done"

    @property
    def passed(self) -> bool:
        return self.finished and self.failure is None

    def to_json(self) -> list[dict[str, object]]:
        return [c.to_json() for c in self._challenges]

    def frame_due(self, t: float, last_t: float | None, fps: float,
                  waiting_fps: float) -> bool:
        """Is the frame at `t` to be analysed, the last one having been at `last_t`, on
        a stream analysed at `fps`? Always, but while the script only waits (then at
        `waiting_fps`, with half a full-rate period of slack for the caller's jitter):
        in a hold while the action reads on (the release comes by the clock) and in a
        pause after a met challenge but its end. Never in the reaction and release
        windows, whose onset and end times are judged, nor in the first pause, where
        the action levels are still being learnt."""
        if last_t is None or not self._waiting(t, waiting_fps):
            return True
        return t - last_t >= 1.0 / waiting_fps - 0.5 / fps

    def _waiting(self, t: float, waiting_fps: float) -> bool:
        if self._phase == "hold":
            # until a frame reads the held action off: a break is then timed at the
            # full rate (only its start may be seen up to one slow frame late)
            c = self._current
            return c is not None and self._runs[c.action].gap_start is None
        if self._phase != "pause" or self._still_since is None:
            return False
        # An action begun in the pause fails the challenge only if it is confirmed
        # before the prompt; one starting in the pause's last (longest confirmation +
        # two slow frames) is seen at the full rate, so it is judged exactly as at the
        # full rate (a later start time there let a reel through in simulation).
        lead = max(self.params.natural_blink_max_s, self.params.onset_min_s) \
            + 2.0 / waiting_fps
        return t < self._prompt_due - lead

    # --- inputs ---

    def begin(self, now: float) -> None:
        """A face is in view: the first random pause starts (later calls do nothing)."""
        if self._phase == "idle":
            self._now = max(self._now, now)
            self._pause()

    def tick(self, now: float) -> list[Event]:
        self._now = max(self._now, now)
        p = self.params
        c = self._current
        if c is None:
            return []
        if self._settle_until is not None and now >= self._settle_until:
            self._settled()
        if self._phase == "pause" and now >= self._prompt_due:
            c.prompted_at = now
            self._phase = "onset"
            return [Prompt(self._index, len(self._challenges), c.action,
                           round(p.reaction_max_s * 1000))]
        if self._phase == "onset":
            assert c.prompted_at is not None
            if now > c.prompted_at + p.reaction_max_s + self._confirm_s(c.action) + p.settle_s:
                return self._fail("too_late")
        if self._phase == "hold":
            assert c.release_due is not None
            if now >= c.release_due:
                c.released_at = now
                self._phase = "release"
                return [Release(self._index, c.action)]
        if self._phase == "release":
            assert c.released_at is not None
            if now > c.released_at + p.release_max_s + p.dropout_s + p.settle_s:
                return self._fail("too_late")
        return []

    def observe(self, state: ActionState, cues: tuple[CueEvent, ...] = ()) -> list[Event]:
        """One analysed frame: its action state and the engine's cue events."""
        self._now = max(self._now, state.t)
        ended: dict[str, float] = {}
        for action, run in self._runs.items():
            end = run.update(state.t, state.face, is_on(state, action),
                             self._confirm_s(action), self.params)
            if end is not None:
                ended[action] = end
        c = self._current
        if c is None or self._phase == "idle":
            return []
        if self._phase == "pause":
            if self._settle_until is not None:
                # settled once no action has read on for as long as an onset must last
                # (the first frames after a stall may be broken: one is not enough)
                if not state.face or any(is_on(state, a) for a in HOLD_ACTIONS):
                    self._settle_off = None
                elif self._settle_off is None:
                    self._settle_off = state.t
                elif state.t - self._settle_off >= self.params.onset_min_s:
                    self._settled()
                return []
            return self._observe_pause()
        assert c.prompted_at is not None
        for action, run in self._runs.items():
            if action in (c.action, COUNTERPART.get(c.action)):
                continue
            if run.confirmed and run.start is not None and run.start >= c.prompted_at:
                return self._fail("wrong_action")
        if c.action in LEGACY_ACTIONS:
            return self._observe_cues(c, cues)
        return self._observe_hold(c, state, self._runs[c.action], ended.get(c.action))

    def resume(self, now: float) -> list[Event]:
        """The video stalled (the runner stopped the clock: no `tick` while no frame
        came) and frames flow again. A challenge under way cannot be judged across the
        gap (its reaction or release window passed unseen), so it begins again rather
        than failing the person: a release if its action had been asked (the person lets
        go), then, once no action reads on (bounded by a reaction and a release window),
        a fresh random pause and the same prompt again. That pause is judged like the
        first one: an action begun across the gap is no anticipation. A failure already
        decided stays (nothing here undoes one); the runner bounds how many resumes a
        session gets, since each is one more draw of the timing for a recording."""
        if self._phase in ("idle", "done"):
            return []
        p = self.params
        self._now = max(self._now, now)
        old = self._challenges[self._index]
        events: list[Event] = []
        if old.prompted_at is not None and old.action in HOLD_ACTIONS:
            events.append(Release(self._index, old.action))
        if old.prompted_at is not None:
            self.restarts += 1
        self._challenges[self._index] = _Challenge(old.action, restarts=old.restarts +
                                                   (old.prompted_at is not None))
        self._runs = {a: ActionRun() for a in HOLD_ACTIONS}
        self._still_since = None
        self._phase = "pause"
        self._prompt_due = float("inf")
        self._settle_until = self._now + p.reaction_max_s + p.release_max_s
        self._settle_off = None
        return events

    def _settled(self) -> None:
        """After a resume, no action reads on (or long enough was waited): the fresh
        pause starts."""
        self._settle_until = self._settle_off = None
        self._pause()

    # --- the rules ---

    @property
    def _current(self) -> _Challenge | None:
        if self._phase in ("idle", "done"):
            return None
        return self._challenges[self._index]

    def _confirm_s(self, action: str) -> float:
        if action in ("eyes_closed", "blink"):
            return self.params.natural_blink_max_s
        return self.params.onset_min_s

    def _observe_pause(self) -> list[Event]:
        """Between two challenges the person waits for the next prompt: a challenge
        action made then anticipates a prompt it cannot know, and fails the coming
        challenge as too_early. That is any action started since the previous prompt
        and confirmed now, including one that began as the asked one ended: a reel
        going straight from one action into the next meets a release that way, and its
        next action is only confirmed after the release was. A pose held since before
        the previous prompt is no new action (as it was none during that challenge).
        Not in the first pause: the person has only just come into view and may still
        be settling."""
        if self._still_since is None:
            return []
        for run in self._runs.values():
            if run.confirmed and run.start is not None and run.start >= self._still_since:
                return self._fail("too_early")
        return []

    def _observe_hold(self, c: _Challenge, state: ActionState, run: ActionRun,
                      ended: float | None) -> list[Event]:
        p = self.params
        assert c.prompted_at is not None
        if self._phase == "onset":
            # confirmed and on at or after the prompt: this run is the answer
            if run.confirmed and run.start is not None and run.last_on >= c.prompted_at:
                if run.start < c.prompted_at + p.reaction_min_s:
                    return self._fail("too_early")
                if run.start > c.prompted_at + p.reaction_max_s:
                    return self._fail("too_late")
                c.onset_at = run.start
                c.release_due = run.start + self._rng.uniform(p.hold_min_s, p.hold_max_s)
                self._phase = "hold"
            return []
        if c.released_at is not None and c.first_off is None and state.face and \
                state.t >= c.released_at and not is_on(state, c.action):
            c.first_off = state.t
        if ended is None:
            return []
        if c.released_at is None or ended < c.released_at:
            return self._fail("hold_broken")
        c.ended_at = ended
        if ended < c.released_at + p.reaction_min_s:
            return self._fail("too_early")
        # Late is judged from the first frame seen off after the release: a natural
        # blink just after opening the eyes puts the end confirmed later, not the
        # person's reaction.
        if min(ended, c.first_off or ended) > c.released_at + p.release_max_s:
            return self._fail("too_late")
        return self._met()

    def _observe_cues(self, c: _Challenge, cues: tuple[CueEvent, ...]) -> list[Event]:
        """Legacy actions: a cue of the asked kind starting inside the reaction window
        meets it. An earlier mouth movement that was still going at the prompt is
        too_early (a talking replay moves its mouth all the time); an earlier blink is
        ignored (natural blinks never fail anything)."""
        p = self.params
        assert c.prompted_at is not None
        for cue in cues:
            if cue.kind != c.action:
                continue
            start = cue.detail.get("start", cue.t)
            if start < c.prompted_at + p.reaction_min_s:
                if c.action == "mouth" and cue.t >= c.prompted_at:
                    return self._fail("too_early")
                continue
            if start > c.prompted_at + p.reaction_max_s:
                return self._fail("too_late")
            c.onset_at = start
            return self._met()
        return []

    def _met(self) -> list[Event]:
        c = self._challenges[self._index]
        c.met_at = self._now
        event = Met(self._index, c.action)
        self._index += 1
        if self._index == len(self._challenges):
            self._phase = "done"
        else:
            self._still_since = c.prompted_at
            self._pause(since=c.ended_at)
        return [event]

    def _fail(self, reason: str) -> list[Event]:
        c = self._challenges[self._index]
        c.failed = reason
        self.failure = Failed(self._index, c.action, reason)
        self._phase = "done"
        return [self.failure]

    def _pause(self, since: float | None = None) -> None:
        """The next prompt is due a random pause after `since` (the end of the action
        just met; a release is confirmed only `dropout_s` later) or now."""
        p = self.params
        self._phase = "pause"
        start = self._now if since is None else min(since, self._now)
        self._prompt_due = start + self._rng.uniform(p.pause_min_s, p.pause_max_s)
