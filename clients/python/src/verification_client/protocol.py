"""What goes over the wire, without any I/O: requests to send and answers to read.

The synchronous and asynchronous clients only move these bytes (urllib, aiohttp), so
both sign, encode and interpret exactly alike.

Media go as multipart file parts, not base64 form fields: base64 grows a body by a
third, and the service's 10 MB body limit would then refuse a 7.5 MB video.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Union

from .errors import ApiError, TransportError
from .results import Envelope
from .signing import signed_fields

Media = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
"""Image or video: its bytes, or the path of a file holding them."""

SUCCESS, PENDING = "2000", "2020"
USER_AGENT = "verification-client-python/0.1.0"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(frozen=True)
class Session:
    """A created session (POST /v1/sessions). Keep it server-side; hand the app only
    `for_app()`, never the API secret. `to_json()`/`from_json()` store it between calls
    (it holds the session token: store it like a password)."""

    session_id: str
    session_token: str
    whip_url: str
    result_url: str
    events_url: str
    expires_at: str
    ttl_s: float
    challenges: list[str]
    ice_servers: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        return cls(session_id=data["session_id"], session_token=data["session_token"],
                   whip_url=data["whip_url"], result_url=data["result_url"],
                   events_url=data.get("events_url", ""),
                   expires_at=data.get("expires_at", ""),
                   ttl_s=float(data.get("ttl_s", 0.0)),
                   challenges=list(data.get("challenges", [])),
                   ice_servers=list(data.get("ice_servers", [])))

    def to_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "session_token": self.session_token,
                "whip_url": self.whip_url, "result_url": self.result_url,
                "events_url": self.events_url, "expires_at": self.expires_at,
                "ttl_s": self.ttl_s, "challenges": list(self.challenges),
                "ice_servers": list(self.ice_servers)}

    def for_app(self) -> dict[str, Any]:
        """What the app or page needs to stream (the web page's `?session=` link takes
        exactly these): no API key, no secret."""
        return {"session_id": self.session_id, "session_token": self.session_token,
                "whip_url": self.whip_url, "result_url": self.result_url,
                "ice_servers": list(self.ice_servers)}

    def expires_in(self, now: float) -> float | None:
        """Seconds until `expires_at`, when it is readable."""
        try:
            return datetime.fromisoformat(self.expires_at).timestamp() - now
        except ValueError:
            return None


def read_media(media: Media) -> bytes:
    if isinstance(media, (bytes, bytearray, memoryview)):
        return bytes(media)
    if isinstance(media, (str, os.PathLike)):
        return Path(media).read_bytes()
    raise TypeError(f"media must be bytes or a path, not {type(media).__name__}")


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[str, bytes]:
    """(Content-Type, body) of an RFC 7578 multipart/form-data body."""
    boundary = "----verification-client-" + secrets.token_hex(16)
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                ).encode() + value.encode() + b"\r\n"
    for name, data in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def challenges_field(challenges: int | str | Sequence[str]) -> str:
    """A count (0-6) or a list of actions, as the service's `challenges` field."""
    if isinstance(challenges, bool):
        raise TypeError("challenges: a count or a list of actions")
    if isinstance(challenges, int):
        return str(challenges)
    if isinstance(challenges, str):
        return challenges
    return ",".join(challenges)


@dataclass(frozen=True)
class Protocol:
    base_url: str
    key: str
    secret: str

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def _post(self, path: str, fields: dict[str, str], files: dict[str, bytes]
              ) -> HttpRequest:
        ctype, body = multipart({**signed_fields(self.key, self.secret), **fields}, files)
        return HttpRequest("POST", self._url(path), {
            "Content-Type": ctype, "Accept": "application/json", "User-Agent": USER_AGENT},
            body)

    def verify(self, type_id: int, files: dict[str, Media]) -> HttpRequest:
        return self._post("/api/verify", {"typeId": str(type_id)},
                          {name: read_media(m) for name, m in files.items()})

    def create_session(self, portrait: Media | None, challenges: int | str | Sequence[str]
                       | None, ttl: float | None, callback_url: str | None) -> HttpRequest:
        fields: dict[str, str] = {}
        if challenges is not None:
            fields["challenges"] = challenges_field(challenges)
        if ttl is not None:
            fields["ttl"] = f"{ttl:g}"
        if callback_url is not None:
            fields["callback_url"] = callback_url
        files = {} if portrait is None else {"img": read_media(portrait)}
        return self._post("/v1/sessions", fields, files)

    @staticmethod
    def _bearer(method: str, url: str, session: Session) -> HttpRequest:
        return HttpRequest(method, url, {"Authorization": f"Bearer {session.session_token}",
                                         "Accept": "application/json",
                                         "User-Agent": USER_AGENT})

    def result(self, session: Session) -> HttpRequest:
        return self._bearer("GET", session.result_url, session)

    def end_session(self, session: Session) -> HttpRequest:
        """DELETE whip_url: the session is decided with what it has (or ends without a
        decision when no media came)."""
        return self._bearer("DELETE", session.whip_url, session)


def parse_envelope(http_status: int, body: bytes) -> Envelope:
    """The answer's envelope, raising the ApiError of its status unless it is 2000 or
    2020 (pending); TransportError when the answer is not the service's JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TransportError(f"HTTP {http_status}: not a JSON answer from the service",
                             http_status)
    message = data.get("messageString")
    if isinstance(message, dict):
        if str(message.get("status")) in (SUCCESS, PENDING) and http_status < 300:
            return data
        raise ApiError.from_envelope(http_status, data)
    if 200 <= http_status < 300:  # the session JSON has no envelope
        return data
    raise TransportError(f"HTTP {http_status} without the service's envelope", http_status)


def is_pending(answer: Envelope) -> bool:
    message = answer.get("messageString")
    return isinstance(message, dict) and str(message.get("status")) == PENDING


def poll_delays(first_s: float = 0.5, factor: float = 1.5, max_s: float = 4.0
                ) -> Iterator[float]:
    """Waits between result polls: soon at first (a session is often decided within a
    second of its last prompt), then backing off so a long session costs few calls."""
    delay = first_s
    while True:
        yield delay
        delay = min(max_s, delay * factor)


DEFAULT_RESULT_TIMEOUT_S = 150.0
"""When the session's expiry cannot be read: the default 120 s TTL plus a margin."""
RESULT_GRACE_S = 30.0
"""Past the session's expiry it is decided at the latest; allow for clock differences."""


def result_wait_s(session: Session, timeout_s: float | None, now: float) -> float:
    """How long `result()` waits: `timeout_s`, or until the session's expiry (it is
    decided by then at the latest) plus a margin."""
    if timeout_s is not None:
        return timeout_s
    left = session.expires_in(now)
    return DEFAULT_RESULT_TIMEOUT_S if left is None else max(0.0, left) + RESULT_GRACE_S
