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


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def decision_fields(decision: Decision) -> dict[str, Any]:
    """A liveness decision as a log line's fields, in the answer's words: the verdict,
    its reasons in words and as codes, and the portrait comparison's yes/no when there
    is one (no scores of the face, no images, no embeddings)."""
    fields: dict[str, Any] = {"verdict": verdict_words(decision.live),
                              "reasons": decision.words,
                              "reason_codes": [str(code) for code in decision.codes]}
    if decision.comparison is not None:
        fields["same_person"] = yes_no(decision.comparison.same)
    return fields


def face_comparison_items(comparison: Comparison) -> list[dict[str, Any]]:
    return [
        veritem(f"Decision result:{yes_no(comparison.same)}"),
        veritem(f"Decision value:{comparison.score}"),
    ]


def liveness_items(decision: Decision) -> list[dict[str, Any]]:
    """typeId 3035's veritems: an image's two, or a clip's or a stream's five (then
    the portrait comparison's two, when there is one)."""
    if decision.cues is None:
        return [veritem(verdict_words(decision.live)),
                veritem(f"Decision value:{int(decision.value)}")]
    items = [
        veritem("Decision value", f"{decision.value:.1f}"),
        veritem("Live or not", verdict_words(decision.live)),
        veritem("Whether there is a replacement", yes_no(decision.cues.replaced)),
        veritem("Whether there is blinking", yes_no(decision.cues.blinked)),
        veritem("Whether there is a mouth", yes_no(decision.cues.mouth_moved)),
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
