"""The vendor envelope: `{infoList: [{veritem: [...]}], messageString: {status, value}}`.

Shapes follow shared/spec/README.md exactly: every veritem has `desc`, `name: null` and
`content` ("" where the document shows none); our own extras go under `detail` only.
"""

from __future__ import annotations

from typing import Any

Payload = dict[str, Any]


def veritem(desc: str, content: str = "") -> dict[str, Any]:
    return {"desc": desc, "name": None, "content": content}


def success(veritems: list[dict[str, Any]], detail: dict[str, Any] | None = None) -> Payload:
    body: Payload = {
        "infoList": [{"veritem": veritems}],
        "messageString": {"status": "2000", "value": "success"},
    }
    if detail is not None:
        body["detail"] = detail
    return body


def failure(status: str, value: str, detail: dict[str, Any] | None = None) -> Payload:
    body: Payload = {"infoList": [], "messageString": {"status": status, "value": value}}
    if detail is not None:
        body["detail"] = detail
    return body


def face_comparison_items(same: bool, score: int) -> list[dict[str, Any]]:
    return [
        veritem(f"Decision result:{'yes' if same else 'no'}"),
        veritem(f"Decision value:{score}"),
    ]
