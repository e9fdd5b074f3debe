"""A session's challenge set: the default one, a count, or an explicit list, completed.

Completion is the rule that matters: whatever the client asked, a set with challenges
has at least `min_holds` hold actions of `min_kinds` different ones (settings.py says
why), so what a recording cannot know is *which* action comes next.
"""

from __future__ import annotations

import random

from service.liveness.challenges.actions import ACTIONS, COUNTERPART, HOLD_ACTIONS
from service.liveness.challenges.settings import ChallengeSettings


def pick_challenges(count: int, rng: random.Random | None = None,
                    actions: tuple[str, ...] = HOLD_ACTIONS) -> list[str]:
    """`count` random hold actions, no action twice in a row (each needs a new movement)
    unless there is only one to pick from."""
    rng = rng or random.SystemRandom()
    chosen: list[str] = []
    for _ in range(count):
        options = [a for a in actions if not chosen or a != chosen[-1]] or list(actions)
        chosen.append(rng.choice(options))
    return chosen


def parse_challenges(value: object, params: ChallengeSettings | None = None,
                     rng: random.Random | None = None) -> list[str]:
    """The session's challenge set from the `challenges` field: None or "" (the default
    set), a count ("2", 2: that many random hold actions) or a list ("blink,mouth" or
    ["eyes_closed", "turn_left"]) of ACTIONS, completed (see `completed`); ValueError
    otherwise."""
    p = params or ChallengeSettings()
    rng = rng or random.SystemRandom()
    if value is None or value == "":
        return pick_challenges(p.default_count, rng, p.actions)
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        count = int(value)
        if not 0 <= count <= p.max_count:
            raise ValueError(f"challenges: count must be 0..{p.max_count}")
        return completed(pick_challenges(count, rng, p.actions), p, rng) if count else []
    items = value if isinstance(value, list) else str(value).split(",")
    actions = [str(a).strip().lower() for a in items if str(a).strip()]
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown or not actions or len(actions) > p.max_count:
        raise ValueError(f"challenges: a count or a list of {', '.join(ACTIONS)} "
                         f"(at most {p.max_count})")
    return completed(actions, p, rng)


def completed(actions: list[str], params: ChallengeSettings, rng: random.Random) -> list[str]:
    """`actions` followed by random hold actions (of `params.actions`) until it has
    `min_holds` of them of `min_kinds` different actions (or as many kinds as there
    are), each added one a new movement (not the previous action nor its hold
    counterpart) where there is a choice and, while kinds are short, a new kind."""
    out = list(actions)
    min_kinds = min(params.min_kinds, len(params.actions))

    def short() -> tuple[int, int]:
        holds = [a for a in out if a in HOLD_ACTIONS]
        return params.min_holds - len(holds), min_kinds - len(set(holds))

    while max(short()) > 0:
        last = out[-1]
        kinds = set(out) if short()[1] > 0 else set()
        options = [a for a in params.actions if a not in (last, COUNTERPART.get(last))]
        options = [a for a in options if a not in kinds] or options or list(params.actions)
        out.append(rng.choice(options))
    return out
