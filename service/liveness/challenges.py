"""The challenge script of a streaming session: prompts in order, each with a deadline.

Pure and synchronous: the session runner feeds it cue events with their media times and
asks it what to tell the client. A cue counts only for the challenge being shown, and
only if it happens after that challenge was shown and before its deadline, so a blink
recorded before the "blink" prompt (or a replayed clip that happens to blink early)
proves nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ACTIONS = ("blink", "mouth", "turn_left", "turn_right")


def pick_challenges(count: int, rng: random.Random | None = None) -> list[str]:
    """`count` random prompts, no action twice in a row (so each needs a new movement)."""
    rng = rng or random.SystemRandom()
    chosen: list[str] = []
    for _ in range(count):
        options = [a for a in ACTIONS if not chosen or a != chosen[-1]]
        chosen.append(rng.choice(options))
    return chosen


def parse_challenges(value: object, max_count: int = 6) -> list[str]:
    """A count ("2", 2) or a list ("blink,mouth" or ["blink", "mouth"]) of actions."""
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        count = int(value)
        if not 0 <= count <= max_count:
            raise ValueError(f"challenges: count must be 0..{max_count}")
        return pick_challenges(count)
    items = value if isinstance(value, list) else str(value).split(",")
    actions = [str(a).strip().lower() for a in items if str(a).strip()]
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown or not actions or len(actions) > max_count:
        raise ValueError(f"challenges: a count or a list of {', '.join(ACTIONS)} "
                         f"(at most {max_count})")
    return actions


@dataclass
class Challenge:
    action: str
    issued_at: float | None = None
    deadline: float | None = None
    met_at: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"action": self.action, "issued_at": self.issued_at, "met_at": self.met_at}


@dataclass
class ChallengeScript:
    actions: list[str]
    time_per_challenge_s: float = 7.0
    challenges: list[Challenge] = field(init=False)
    failed_at: float | None = None
    failed_challenge: Challenge | None = None

    def __post_init__(self) -> None:
        self.challenges = [Challenge(a) for a in self.actions]

    @property
    def current(self) -> Challenge | None:
        if self.failed_at is not None:
            return None
        return next((c for c in self.challenges if c.met_at is None), None)

    @property
    def started(self) -> bool:
        return bool(self.challenges) and self.challenges[0].issued_at is not None

    @property
    def finished(self) -> bool:
        return self.failed_at is not None or self.current is None

    @property
    def passed(self) -> bool:
        return self.failed_at is None and all(c.met_at is not None for c in self.challenges)

    def start(self, t: float) -> Challenge | None:
        """Show the first prompt (call once a face is in view); returns it, if any."""
        if self.started or not self.challenges:
            return None
        return self._issue(self.challenges[0], t)

    def _issue(self, challenge: Challenge, t: float) -> Challenge:
        challenge.issued_at = t
        challenge.deadline = t + self.time_per_challenge_s
        return challenge

    def on_cue(self, action: str, t: float) -> tuple[Challenge | None, Challenge | None]:
        """Record a cue; returns (the challenge it met, the next prompt to show)."""
        now = self.current
        if now is None or now.issued_at is None or now.deadline is None:
            return None, None
        if action != now.action or not (now.issued_at <= t <= now.deadline):
            return None, None
        now.met_at = t
        following = self.current
        return now, self._issue(following, t) if following is not None else None

    def tick(self, t: float) -> bool:
        """Advance the clock; True when the current challenge just ran out of time."""
        now = self.current
        if now is not None and now.deadline is not None and t > now.deadline:
            self.failed_at, self.failed_challenge = t, now
            return True
        return False
