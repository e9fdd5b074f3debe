"""The challenge actions: what a person may be asked to do, and how a frame shows each.

Hold actions are the protocol's own: the person starts one after its prompt and keeps it
until a release sent at a moment they are not told in advance. The legacy `blink` and
`mouth` actions, each met by one cue of the engine (a movement that starts and ends), are
still accepted in an explicit list but never picked by the service: a legacy `blink` is
met by the next natural blink of any recording about half the time (settings.py,
`min_holds`).
"""

from __future__ import annotations

from service.liveness.holds import ActionState

HOLD_ACTIONS = ("eyes_closed", "mouth_open", "turn_left", "turn_right")
LEGACY_ACTIONS = ("blink", "mouth")  # still accepted in an explicit list
ACTIONS = HOLD_ACTIONS + LEGACY_ACTIONS
# A legacy action's hold counterpart is the same movement made longer: it is not a wrong
# action while the legacy one is asked.
COUNTERPART = {"blink": "eyes_closed", "mouth": "mouth_open"}


def is_on(state: ActionState, action: str) -> bool:
    """Does the frame's action state show the hold action `action`?"""
    if action == "eyes_closed":
        return state.eyes_closed
    if action == "mouth_open":
        return state.mouth_open
    return state.turn == action
