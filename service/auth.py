"""API-key authentication of the vendor contract: HMAC token, time window, replays.

token = lowercase hex HMAC-SHA256(secret, key + timestamp). The vendor scheme signs only
key and timestamp, not the body, so the window bounds how long a leaked token is useful;
an identical request seen twice inside the window is refused as a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Mapping

from service.errors import BadCredentials, MalformedField, RateLimited, StaleTimestamp


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


@dataclass
class ReplayCache:
    """Fingerprints of accepted requests, kept for as long as their timestamp is valid."""

    max_entries: int = 100_000
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def check_and_add(self, fingerprint: str, expires_at: float, now: float) -> bool:
        """Return False when the fingerprint was already seen (a replay)."""
        while self._seen:
            oldest, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)
        if fingerprint in self._seen:
            return False
        self._seen[fingerprint] = expires_at
        return True


@dataclass
class FailureLimiter:
    """Failed authentications per client address over a sliding window."""

    limit: int
    window_s: float
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, client: str, now: float) -> deque[float]:
        hits = self._failures.setdefault(client, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return hits

    def check(self, client: str, now: float) -> None:
        if len(self._recent(client, now)) >= self.limit:
            raise RateLimited("too many failed attempts, retry later")

    def record(self, client: str, now: float) -> None:
        self._recent(client, now).append(now)
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            self._failures = {c: h for c, h in self._failures.items() if h}


@dataclass
class Authenticator:
    keys: Mapping[str, str]
    window_s: float
    reject_replays: bool
    limiter: FailureLimiter
    replays: ReplayCache = field(default_factory=ReplayCache)

    def verify(self, client: str, key: str, timestamp: str, token: str,
               body_digest: str, now: float | None = None) -> None:
        """Raise the matching ApiError unless the request is authentic and fresh."""
        now = time.time() if now is None else now
        self.limiter.check(client, now)
        try:
            self._verify(key, timestamp, token, body_digest, now)
        except (BadCredentials, StaleTimestamp):
            self.limiter.record(client, now)
            raise

    def _verify(self, key: str, timestamp: str, token: str, body_digest: str,
                now: float) -> None:
        ts = parse_timestamp(timestamp)
        secret = self.keys.get(key)
        expected = make_token(secret or "", key, timestamp)
        # Compare even for unknown keys so timing does not reveal which keys exist.
        good = hmac.compare_digest(expected.encode(), token.strip().lower().encode("utf-8", "replace"))
        if secret is None or not good:
            raise BadCredentials()
        if abs(now - ts) > self.window_s:
            raise StaleTimestamp()
        if self.reject_replays:
            fingerprint = hashlib.sha256(f"{key}\0{timestamp}\0{body_digest}".encode()).hexdigest()
            if not self.replays.check_and_add(fingerprint, ts + self.window_s, now):
                raise StaleTimestamp("replayed request: send a fresh timestamp and token")
