"""Typed views of the service's answers, parsed from the vendor envelope.

The envelope lists its findings as `veritem` descriptions ("Decision result:yes",
"Live or not" with content "Living body"...); these classes name them. Every result
keeps the envelope it came from (`envelope`) and its `detail`, so nothing the service
said is lost when a field is not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Envelope = dict[str, Any]
LIVE, NOT_LIVE = "Living body", "Non-living body"


def _items(envelope: Envelope) -> list[tuple[str, str]]:
    """(desc, content) of each veritem, in order."""
    info = envelope.get("infoList") or [{}]
    return [(str(i.get("desc", "")), str(i.get("content") or ""))
            for i in info[0].get("veritem", [])]


def _detail(envelope: Envelope) -> dict[str, Any]:
    detail = envelope.get("detail")
    return detail if isinstance(detail, dict) else {}


@dataclass(frozen=True)
class Cue:
    """One liveness cue seen in the video: `kind` blink | mouth | turn_left | turn_right
    | replacement, at `t` seconds into the stream, with its measurements."""

    kind: str
    t: float
    measures: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, event: dict[str, Any]) -> Cue:
        measures = {k: v for k, v in event.items() if k not in ("kind", "t")}
        return cls(str(event.get("kind", "")), float(event.get("t", 0.0)), measures)


@dataclass(frozen=True)
class FaceComparison:
    """typeId 21, or a session's comparison with its portrait: `verdict` "yes" when the
    faces are the same person; `value` 0-100, the estimated probability in percent."""

    verdict: Literal["yes", "no"]
    value: int
    detail: dict[str, Any]
    envelope: Envelope

    @property
    def same_person(self) -> bool:
        return self.verdict == "yes"

    @property
    def reasons(self) -> list[str]:
        return []


@dataclass(frozen=True)
class SilentLiveness:
    """typeId 3035 with an image: `verdict` "Living body" or "Non-living body"; `value`
    0-100 on the verdict's side of 50."""

    verdict: str
    value: int
    detail: dict[str, Any]
    envelope: Envelope

    @property
    def live(self) -> bool:
        return self.verdict == LIVE

    @property
    def reasons(self) -> list[str]:
        return [] if self.live else ["silent liveness: presentation attack suspected"]


@dataclass(frozen=True)
class VideoLiveness:
    """typeId 3035 with a video, and the liveness part of a session's result."""

    verdict: str
    value: float
    replaced: bool
    blinked: bool
    mouth_moved: bool
    reasons: list[str]
    cues: list[Cue]
    detail: dict[str, Any]
    envelope: Envelope

    @property
    def live(self) -> bool:
        return self.verdict == LIVE


@dataclass(frozen=True)
class SessionResult(VideoLiveness):
    """A streaming session's decision (GET result_url, the data channel's `result`, the
    webhook body): the video liveness findings, the comparison with the ID portrait
    when the session had one, and the challenges as they went."""

    comparison: FaceComparison | None = None
    challenges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Live, and the same person as the portrait when one was given."""
        return self.live and (self.comparison is None or self.comparison.same_person)


def _prefixed(items: list[tuple[str, str]], prefix: str) -> str | None:
    return next((d[len(prefix):] for d, _ in items if d.startswith(prefix)), None)


_VERDICTS: dict[str, Literal["yes", "no"]] = {"yes": "yes", "no": "no"}


def parse_face_comparison(envelope: Envelope) -> FaceComparison:
    items = _items(envelope)
    verdict, value = _prefixed(items, "Decision result:"), _prefixed(items, "Decision value:")
    said = _VERDICTS.get(verdict or "")
    if said is None or value is None:
        raise ValueError("not a face-comparison answer")
    return FaceComparison(said, int(value), _detail(envelope), envelope)


def parse_silent_liveness(envelope: Envelope) -> SilentLiveness:
    items = _items(envelope)
    verdict = next((d for d, _ in items if d in (LIVE, NOT_LIVE)), None)
    value = _prefixed(items, "Decision value:")
    if verdict is None or value is None:
        raise ValueError("not a silent-liveness answer")
    return SilentLiveness(verdict, int(value), _detail(envelope), envelope)


def _video_fields(envelope: Envelope) -> dict[str, Any]:
    items = dict(_items(envelope))
    if "Live or not" not in items:
        raise ValueError("not a video-liveness answer")
    detail = _detail(envelope)
    return {
        "verdict": items["Live or not"],
        "value": float(items.get("Decision value") or 0.0),
        "replaced": items.get("Whether there is a replacement") == "yes",
        "blinked": items.get("Whether there is blinking") == "yes",
        "mouth_moved": items.get("Whether there is a mouth") == "yes",
        "reasons": [str(r) for r in detail.get("reasons", [])],
        "cues": [Cue.from_json(e) for e in detail.get("events", []) if isinstance(e, dict)],
        "detail": detail,
        "envelope": envelope,
    }


def parse_video_liveness(envelope: Envelope) -> VideoLiveness:
    return VideoLiveness(**_video_fields(envelope))


def parse_liveness(envelope: Envelope) -> SilentLiveness | VideoLiveness:
    """typeId 3035: the answer's shape says whether the service saw an image or a video."""
    if any(d == "Live or not" for d, _ in _items(envelope)):
        return parse_video_liveness(envelope)
    return parse_silent_liveness(envelope)


def parse_session_result(envelope: Envelope) -> SessionResult:
    comparison = None
    if any(d.startswith("Decision result:") for d, _ in _items(envelope)):
        comparison = parse_face_comparison(envelope)
    fields = _video_fields(envelope)
    challenges = [c for c in fields["detail"].get("challenges", []) if isinstance(c, dict)]
    return SessionResult(**fields, comparison=comparison, challenges=challenges)
