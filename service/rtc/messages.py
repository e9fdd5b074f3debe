"""Every message a session sends its client (spec sections 2 and 2.1), typed, one encoding.

The same JSON text goes over the `liveness` data channel and, one `data:` line each,
over the events stream (GET /v1/sessions/{id}/events), so the two can never drift
apart: the runner builds these dataclasses, `encode` is the only serialisation. The
challenge script's events (service.liveness.challenges.events: Prompt, Release, Met, Failed)
are domain events of a pure module that knows nothing about transports;
`from_script` turns them into the messages here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from service.liveness.challenges import events as script

# Why a challenge failed: the script's reasons, and "not_delivered" (the session's: the
# prompt reached neither an open data channel nor an events subscriber).
FAILURE_REASONS = (*script.FAIL_REASONS, "not_delivered")


@dataclass(frozen=True)
class Progress:
    """What the analysis sees (face found / too far / too dark / hold still ...)."""

    type: ClassVar[str] = "progress"
    hints: tuple[str, ...]
    faces: int


@dataclass(frozen=True)
class Challenge:
    """Do `action` now; `window_ms` is how long the person has to start it."""

    type: ClassVar[str] = "challenge"
    action: str
    index: int
    total: int
    window_ms: int


@dataclass(frozen=True)
class Release:
    """Stop the held action (sent at a random moment the client is not told before)."""

    type: ClassVar[str] = "release"
    action: str
    index: int


@dataclass(frozen=True)
class ChallengeMet:
    type: ClassVar[str] = "challenge_met"
    action: str
    index: int


@dataclass(frozen=True)
class ChallengeFailed:
    type: ClassVar[str] = "challenge_failed"
    action: str
    index: int
    reason: str  # one of FAILURE_REASONS

    def __post_init__(self) -> None:
        if self.reason not in FAILURE_REASONS:
            raise ValueError(f"unknown challenge failure reason {self.reason!r}")


@dataclass(frozen=True)
class Connection:
    """The video stalled ("unstable": the challenge clock is paused) or flows again
    ("restored": a challenge under way begins again after a fresh pause), see
    service/rtc/stalls.py. The page tells the person their connection is the problem."""

    type: ClassVar[str] = "connection"
    state: str  # "unstable" or "restored"


@dataclass(frozen=True)
class Deciding:
    """The stream has ended; the decision is being computed."""

    type: ClassVar[str] = "deciding"


@dataclass(frozen=True)
class Result:
    """The session's answer: the same envelope GET .../result returns."""

    type: ClassVar[str] = "result"
    payload: dict[str, Any]


Message = (Progress | Challenge | Release | ChallengeMet | ChallengeFailed | Connection
           | Deciding | Result)


def to_json(message: Message) -> dict[str, Any]:
    """The spec 2.1 object: "type" first, then the fields in their declared order."""
    body: dict[str, Any] = {"type": message.type}
    for f in fields(message):
        value = getattr(message, f.name)
        body[f.name] = list(value) if isinstance(value, tuple) else value
    return body


def encode(message: Message) -> str:
    """The message as one line of compact JSON (an SSE `data:` line holds no newline)."""
    return json.dumps(to_json(message), separators=(",", ":"), ensure_ascii=True)


def from_script(event: script.Event) -> Message:
    """The message for one challenge-script event."""
    if isinstance(event, script.Prompt):
        return Challenge(event.action, event.index, event.total, event.window_ms)
    if isinstance(event, script.Release):
        return Release(event.action, event.index)
    if isinstance(event, script.Met):
        return ChallengeMet(event.action, event.index)
    if isinstance(event, script.Failed):
        return ChallengeFailed(event.action, event.index, event.reason)
    raise TypeError(f"not a challenge script event: {event!r}")
