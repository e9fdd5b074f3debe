"""Authentication: the vendor HMAC token, its time window and replays; session bearers.

token = lowercase hex HMAC-SHA256(secret, key + timestamp), matched exactly (no case
folding, no padding: spec section 1). The vendor scheme signs only key and timestamp,
not the body, so the window bounds how long a leaked token is useful; an identical
request seen twice inside the window is refused as a replay. Session endpoints take a
bearer token (RFC 6750); every check of one goes through `Authenticator.check_bearer`,
so a wrong bearer counts toward the same per-address lockout as a wrong HMAC token.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from service.cluster.shared_state import SharedState
from service.errors import BadCredentials, MalformedField, RateLimited, StaleTimestamp

T = TypeVar("T")
# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token; we take exactly one space.
_BEARER = re.compile(r"(?i:bearer) ([A-Za-z0-9._~+/-]+=*)")


def make_token(secret: str, key: str, timestamp: str) -> str:
    return hmac.new(secret.encode(), (key + timestamp).encode(), hashlib.sha256).hexdigest()


def parse_timestamp(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise MalformedField("timestamp", "malformed") from None
    if not math.isfinite(value):
        raise MalformedField("timestamp", "malformed")
    return value


@dataclass(frozen=True)
class AuthSettings:
    # Spec section 1: the timestamp may differ from our clock by this much either way.
    timestamp_window_s: float = 300.0
    # An identical request (same key, timestamp, token and body) seen twice inside the
    # timestamp window is refused as a replay; distinct requests may share a timestamp.
    reject_replays: bool = True
    # Failed authentications per client address before 4290, over a sliding window.
    max_failed_auth: int = 20
    failed_auth_window_s: float = 60.0


@dataclass
class Authenticator:
    """The checks of every authenticated request. The replay cache and the per-address
    failure counts are in the shared state (service.cluster.shared_state), so N replicas refuse
    a replay and lock an address out exactly as one process does."""

    keys: Mapping[str, str]
    window_s: float
    reject_replays: bool
    max_failed: int
    failed_window_s: float
    shared: SharedState

    @classmethod
    def from_settings(cls, keys: Mapping[str, str], settings: AuthSettings,
                      shared: SharedState) -> Authenticator:
        return cls(keys=dict(keys), window_s=settings.timestamp_window_s,
                   reject_replays=settings.reject_replays,
                   max_failed=settings.max_failed_auth,
                   failed_window_s=settings.failed_auth_window_s, shared=shared)

    async def verify(self, client: str, key: str, timestamp: str, token: str,
                     body_digest: str, now: float | None = None) -> None:
        """Raise the matching ApiError unless the request is authentic and fresh."""
        now = time.time() if now is None else now
        await self._check_lockout(client, now)
        try:
            await self._verify(key, timestamp, token, body_digest, now)
        except (BadCredentials, StaleTimestamp):
            await self.shared.add_failure(client, now, self.failed_window_s)
            raise

    async def check_bearer(self, client: str, authorization: str | None,
                           check: Callable[[str], Awaitable[T]], now: float | None = None
                           ) -> T:
        """Lockout first (4290), then `check(token)`; an absent or malformed header or a
        token `check` refuses (BadCredentials) counts as a failed attempt."""
        now = time.time() if now is None else now
        await self._check_lockout(client, now)
        try:
            return await check(bearer_token(authorization))
        except BadCredentials:
            await self.shared.add_failure(client, now, self.failed_window_s)
            raise

    async def _check_lockout(self, client: str, now: float) -> None:
        if await self.shared.failures(client, now, self.failed_window_s) >= self.max_failed:
            raise RateLimited("too many failed attempts, retry later")

    async def _verify(self, key: str, timestamp: str, token: str, body_digest: str,
                      now: float) -> None:
        ts = parse_timestamp(timestamp)
        secret = self.keys.get(key)
        expected = make_token(secret or "", key, timestamp)
        # Compare even for unknown keys so timing does not reveal which keys exist.
        good = hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))
        if secret is None or not good:
            raise BadCredentials()
        if abs(now - ts) > self.window_s:
            raise StaleTimestamp()
        if self.reject_replays:
            fingerprint = hashlib.sha256(f"{key}\0{timestamp}\0{body_digest}".encode()).hexdigest()
            if not await self.shared.add_fingerprint(fingerprint, ts + self.window_s, now):
                raise StaleTimestamp("replayed request: send a fresh timestamp and token")


def bearer_token(authorization: str | None) -> str:
    """The token of `Authorization: Bearer <token>`, exactly as sent."""
    match = _BEARER.fullmatch(authorization or "")
    if match is None:
        raise BadCredentials("send the session token as `Authorization: Bearer <token>`")
    return match.group(1)
