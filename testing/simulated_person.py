"""Simulated people and recordings, driven frame by frame against the challenge script.

A `Behaviour` says, for each frame time, which actions read on (and which cue events
the engine would emit), given what the client was told so far (`Log`). `drive` runs a
ChallengeScript on the stream's clock the way the stream runner does (ticks at the
stream rate, frames observed when `frame_due`), so the script's randomness is met the
way a client meets it, with a seeded rng. Used by tests/test_challenges.py (the timing
rules) and bench/analysis_rate.py (the lower waiting rate over many sessions).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from service.liveness.challenges.actions import HOLD_ACTIONS
from service.liveness.challenges.events import Event, Failed, Met, Prompt, Release
from service.liveness.challenges.script import ChallengeScript
from service.liveness.challenges.settings import ChallengeSettings
from service.liveness.engine import CueEvent
from service.liveness.holds import ActionState

FPS = 10.0
PARAMS = ChallengeSettings()


def frame(t: float, *on: str, face: bool = True) -> ActionState:
    turns = [a for a in on if a.startswith("turn_")]
    return ActionState(t, face, face and "eyes_closed" in on, face and "mouth_open" in on,
                       turns[0] if face and turns else None)


@dataclass
class Log:
    """What the client was told, with the session time it was told."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    analysed: int = 0  # frames the script observed

    def add(self, t: float, events: list[Event]) -> None:
        self.events += [(t, e) for e in events]

    def of(self, kind: type) -> list[tuple[float, Event]]:
        return [(t, e) for t, e in self.events if isinstance(e, kind)]

    @property
    def prompt(self) -> tuple[float, Prompt] | None:
        prompts = self.of(Prompt)
        return prompts[-1] if prompts else None  # type: ignore[return-value]

    def released_at(self, index: int) -> float | None:
        return next((t for t, e in self.of(Release) if e.index == index), None)

    def done(self, index: int) -> bool:
        return any(isinstance(e, (Met, Failed)) and e.index == index for _, e in self.events)


# behaviour(t, log) -> (state of the frame at t, cue events of that frame)
Behaviour = Callable[[float, Log], tuple[ActionState, tuple[CueEvent, ...]]]


def drive(actions: list[str], behaviour: Behaviour, seed: int = 1, until_s: float = 60.0,
          params: ChallengeSettings = PARAMS, waiting_fps: float = FPS
          ) -> tuple[ChallengeScript, Log]:
    """The clock ticks at FPS; frames are observed at FPS, or at `waiting_fps` while
    the script waits (`frame_due`, as the stream runner does)."""
    script = ChallengeScript(actions, params, random.Random(seed))
    log = Log()
    script.begin(0.0)
    last: float | None = None
    for i in range(int(until_s * FPS)):
        t = i / FPS
        log.add(t, script.tick(t))
        if not script.frame_due(t, last, FPS, waiting_fps):
            continue
        last = t
        log.analysed += 1
        state, cues = behaviour(t, log)
        log.add(t, script.observe(state, cues))
        if script.finished:
            break
    return script, log


def person(react_s: float = 0.6, release_s: float = 0.5, does: str | None = None,
           also: Callable[[float, Log], set[str]] | None = None) -> Behaviour:
    """Does the prompted action (or `does`) `react_s` after each prompt and stops it
    `release_s` after the release; `also` adds other actions at given times."""
    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        on: set[str] = set(also(t, log)) if also else set()
        if log.prompt is not None:
            prompted_at, prompt = log.prompt
            released = log.released_at(prompt.index)
            if not log.done(prompt.index) and t >= prompted_at + react_s - 1e-9 and \
                    (released is None or t < released + release_s - 1e-9):
                on.add(does or prompt.action)
        return frame(t, *on), ()
    return behaviour


def reel(on_s: float, gap_s: float, phase_s: float) -> Behaviour:
    """A recording cycling through every action, each held `on_s`, `gap_s` apart."""
    period = on_s + gap_s

    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        k, into = divmod(t + phase_s, period)
        return frame(t, *([HOLD_ACTIONS[int(k) % 4]] if into < on_s else [])), ()
    return behaviour


def one_action_reel(action: str, on_s: float, gap_s: float, phase_s: float) -> Behaviour:
    """A recording of one action made again and again: on `on_s`, off `gap_s`."""
    def behaviour(t: float, log: Log) -> tuple[ActionState, tuple[CueEvent, ...]]:
        return frame(t, *([action] if (t + phase_s) % (on_s + gap_s) < on_s else [])), ()
    return behaviour
