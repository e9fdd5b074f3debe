"""The events the challenge script tells the client: prompt, release, met, failed.

Domain events of a pure module that knows nothing about transports: the session turns
them into its wire messages (service/rtc/messages.py `from_script`), so their fields
are what the client needs and nothing of the script's secrets (a release's due time is
never in one before it is sent).
"""

from __future__ import annotations

from dataclasses import dataclass

# Why a challenge failed, as far as the script can tell.
FAIL_REASONS = ("too_early", "too_late", "wrong_action", "hold_broken")


@dataclass(frozen=True)
class Prompt:
    index: int
    total: int
    action: str
    window_ms: int


@dataclass(frozen=True)
class Release:
    index: int
    action: str


@dataclass(frozen=True)
class Met:
    index: int
    action: str


@dataclass(frozen=True)
class Failed:
    index: int
    action: str
    reason: str  # FAIL_REASONS (the runner adds "not_delivered")


Event = Prompt | Release | Met | Failed
