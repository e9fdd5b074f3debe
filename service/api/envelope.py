"""The vendor envelope: `{infoList: [{veritem: [...]}], messageString: {status, value}}`.

Shapes follow shared/spec/README.md exactly: every veritem has `desc`, `name: null` and
`content` ("" where the document shows none); our own extras go under `detail` only.
This is the one place an answer is worded: uploads (service.api.verify) and streaming
sessions (service.rtc) hand over a structured decision (service.judging.decision) and
get the envelope back.
"""

from __future__ import annotations

from typing import Any

from service.judging.decision import Comparison, Decision

Payload = dict[str, Any]
SUCCESS = "2000"


def veritem(desc: str, content: str = "") -> dict[str, Any]:
    return {"desc": desc, "name": None, "content": content}


def success(veritems: list[dict[str, Any]], detail: dict[str, Any] | None = None) -> Payload:
    body: Payload = {
        "infoList": [{"veritem": veritems}],
        "messageString": {"status": SUCCESS, "value": "success"},
    }
    if detail is not None:
        body["detail"] = detail
    return body


def failure(status: str, value: str, detail: dict[str, Any] | None = None) -> Payload:
    body: Payload = {"infoList": [], "messageString": {"status": status, "value": value}}
    if detail is not None:
        body["detail"] = detail
    return body


def verdict_words(live: bool) -> str:
    return "Living body" if live else "Non-living body"


def face_comparison_items(comparison: Comparison) -> list[dict[str, Any]]:
    return [
        veritem(f"Decision result:{'yes' if comparison.same else 'no'}"),
        veritem(f"Decision value:{comparison.score}"),
    ]


def liveness_items(decision: Decision) -> list[dict[str, Any]]:
    """typeId 3035's veritems: an image's two, or a clip's or a stream's five (then
    the portrait comparison's two, when there is one)."""
    if decision.cues is None:
        return [veritem(verdict_words(decision.live)),
                veritem(f"Decision value:{int(decision.value)}")]
    yes_no = {True: "yes", False: "no"}
    items = [
        veritem("Decision value", f"{decision.value:.1f}"),
        veritem("Live or not", verdict_words(decision.live)),
        veritem("Whether there is a replacement", yes_no[decision.cues.replaced]),
        veritem("Whether there is blinking", yes_no[decision.cues.blinked]),
        veritem("Whether there is a mouth", yes_no[decision.cues.mouth_moved]),
    ]
    if decision.comparison is not None:
        items += face_comparison_items(decision.comparison)
    return items


def liveness_answer(decision: Decision) -> Payload:
    """The answer of a liveness decision. A clip's or a stream's detail starts with
    its reasons (the words); an image's has none."""
    if decision.cues is None:
        return success(liveness_items(decision), decision.detail)
    return success(liveness_items(decision), {"reasons": decision.words, **decision.detail})


def comparison_answer(comparison: Comparison, detail: dict[str, Any]) -> Payload:
    """typeId 21's answer."""
    return success(face_comparison_items(comparison), detail)
