"""Timed hold-and-release challenges: the protocol a streaming session asks a person to follow.

Why this protocol: a recording cannot know *when* a prompt comes nor *how long* it will
be asked to hold. Each challenge waits a random pause, prompts an action, and counts it
only if the action starts inside a reaction window after the prompt (nothing earlier:
no person reacts in 40 ms, and an action already on was not a reaction), is held
without a break until a "release" sent after a random hold the client is not told, and
ends inside a window after that release. Any other challenge action starting inside
those windows, or in the pause before a prompt (after the first), fails the challenge,
so a reel cycling every action does not pass by chance (simulated: 1 pass in 7500
sessions of 3 challenges against reels holding each action 1.5-3 s, 0.0-1.0 s apart).
A natural blink (a closure shorter than `natural_blink_max_s`) is no action at all and
never fails anything.

The modules, each a seam of the protocol:
  actions.py   the action names and how a frame's action state shows each
  settings.py  ChallengeSettings: windows, random ranges, the rules for a set
  events.py    what the client is told (Prompt, Release, Met, Failed)
  sets.py      a session's set from its `challenges` field, completed to the minimum
  runs.py      one action's run of frames: onset confirmation, tolerated breaks
  script.py    ChallengeScript, the state machine driven by the clock and the frames

Importers name the module that owns a name; the names below are re-exported for the
stream runner (service/rtc/runner.py), which imports them from the package.
"""

from service.liveness.challenges.events import Event, Prompt
from service.liveness.challenges.script import ChallengeScript

__all__ = ["ChallengeScript", "Event", "Prompt"]
