"""The two signatures of the service: request tokens and webhook signatures.

Request token (README "API"): lowercase hex HMAC-SHA256(secret, key + timestamp), with
the timestamp in Unix seconds (decimals allowed) within 300 s of the service's clock.
The service refuses an identical request seen twice inside that window, so every call
is signed afresh (microsecond timestamps: distinct calls never collide).

Webhook (README "Webhooks"): X-Signature = hex HMAC-SHA256(secret, X-Timestamp + "." +
raw body). A receiver checks it before parsing, in constant time, and refuses old
timestamps so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import WebhookVerificationError
from .results import SessionResult, parse_session_result


def token(secret: str, key: str, timestamp: str) -> str:
    return hmac.new(secret.encode(), (key + timestamp).encode(), hashlib.sha256).hexdigest()


def signed_fields(key: str, secret: str, now: float | None = None) -> dict[str, str]:
    """`key`, `timestamp`, `token` for one call."""
    timestamp = f"{time.time() if now is None else now:.6f}"
    return {"key": key, "timestamp": timestamp, "token": token(secret, key, timestamp)}


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                    hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Webhook:
    """A verified delivery: deduplicate on `webhook_id` (the same on every retry)."""

    webhook_id: str
    timestamp: int
    result: SessionResult


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    if value is None:
        raise WebhookVerificationError(f"missing header {name}")
    return value


def verify_webhook(headers: Mapping[str, str], body: bytes, secret: str,
                   tolerance_s: float = 300, now: float | None = None) -> Webhook:
    """The delivery's result if `body` (the raw bytes, as received) was signed by the
    service with `secret` no more than `tolerance_s` seconds from now; otherwise
    WebhookVerificationError. Parse nothing before this returns."""
    if isinstance(body, str):
        raise TypeError("pass the raw body bytes, not decoded text")
    timestamp = _header(headers, "X-Timestamp").strip()
    signature = _header(headers, "X-Signature").strip()
    expected = webhook_signature(secret, timestamp, bytes(body))
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise WebhookVerificationError("bad signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("malformed X-Timestamp") from None
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        raise WebhookVerificationError("timestamp outside the tolerance (a replay?)")
    try:
        result = parse_session_result(json.loads(body))
    except (ValueError, TypeError, AttributeError) as exc:
        raise WebhookVerificationError(f"signed body is not a session result: {exc}") from None
    return Webhook(_header(headers, "X-Webhook-Id"), sent, result)
