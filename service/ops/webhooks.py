"""Webhooks: the session's result POSTed to the integrator's callback URL, signed, retried.

A session created with `callback_url` gets its result delivered to it once decided,
so the integrator's backend need not poll `result_url`. The request (README "Webhooks"):

    POST <callback_url>
    Content-Type: application/json     body: the result JSON, as GET result_url answers it
    X-Webhook-Id: <hex id>             one per delivery, the same on every retry
    X-Timestamp: <Unix seconds>        of this attempt
    X-Signature: <hex HMAC-SHA256(the API key's secret, X-Timestamp + "." + body)>

A 2xx answer ends the delivery. Any other status (a redirect too: redirects are never
followed), a timeout or a connection error is retried after `backoff_s`, then twice as
long each time, for at most `max_attempts` attempts and `max_total_s` seconds.

Why an allow-list of hosts: without one, anyone holding an API key could make the
service send requests to any address it can reach (its own network, a cloud metadata
endpoint): the service would be a request forwarder. The operator lists the hosts
that receive callbacks; with none listed, webhooks are off and a `callback_url` is
refused (4001) rather than silently ignored.

Delivery runs in its own task: the data channel's result never waits for it, and
shutdown cancels what is still pending. Logs name the callback's host only (its path or
query may carry the integrator's own secrets).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from service.errors import MalformedField
from service.ops.metrics import Metrics

log = logging.getLogger("service.ops.webhooks")
FIELD = "callback_url"


@dataclass(frozen=True)
class WebhookSettings:
    # Hosts a callback_url may name: "host" (any port) or "host:port", compared
    # case-insensitively after IDNA encoding ("[::1]:9000" for an IPv6 literal). Empty:
    # webhooks are off and any callback_url is refused with 4001.
    allowed_hosts: tuple[str, ...] = ()
    # Seconds one attempt may take, connecting included: a receiver is expected to
    # acknowledge at once and do its work later (5 s is what common webhook senders
    # allow).
    timeout_s: float = 5.0
    # Attempts per delivery, the first included; with the backoff below, 5 attempts
    # span 1 + 2 + 4 + 8 = 15 s of waiting: a receiver restarting is caught, a dead one
    # is not retried for long.
    max_attempts: int = 5
    # Wait before the second attempt; it doubles before each later one.
    backoff_s: float = 1.0
    # No attempt starts that could not end within this many seconds of the first.
    max_total_s: float = 60.0
    # Longest callback_url accepted.
    max_url_length: int = 2048


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """X-Signature: hex HMAC-SHA256 with the API key's secret over `timestamp.body`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                    hashlib.sha256).hexdigest()


def _allowed(url: URL, allowed_hosts: tuple[str, ...]) -> bool:
    host = (url.raw_host or "").lower().rstrip(".")
    for entry in allowed_hosts:
        try:
            allowed = URL(f"http://{entry.strip()}")
        except ValueError:
            continue
        if (allowed.raw_host or "").lower().rstrip(".") == host and (
                allowed.explicit_port is None or allowed.explicit_port == url.port):
            return True
    return False


def check_callback_url(raw: str, settings: WebhookSettings) -> URL:
    """The callback URL, or MalformedField (4001) saying why it is refused."""
    if not settings.allowed_hosts:
        raise MalformedField(FIELD, "refused", "webhooks are disabled on this service "
                             "(no hosts in its webhooks.allowed_hosts)")
    if len(raw) > settings.max_url_length:
        raise MalformedField(FIELD, "malformed",
                             f"longer than {settings.max_url_length} characters")
    if any(c.isspace() or not c.isprintable() for c in raw):
        raise MalformedField(FIELD, "malformed", "whitespace or control characters")
    try:
        url = URL(raw)
        port = url.port  # an out-of-range port raises here
    except ValueError:
        raise MalformedField(FIELD, "malformed", "not a URL") from None
    if url.scheme not in ("http", "https"):
        raise MalformedField(FIELD, "malformed", "an http or https URL is required")
    if not url.raw_host or port is None:
        raise MalformedField(FIELD, "malformed", "an absolute URL with a host is required")
    if url.user is not None or url.password is not None:
        raise MalformedField(FIELD, "malformed", "credentials in the URL are not accepted")
    if not _allowed(url, settings.allowed_hosts):
        raise MalformedField(FIELD, "refused", f"host {url.raw_host} is not on this "
                             "service's webhook allow-list (webhooks.allowed_hosts)")
    return url.with_fragment(None)


@dataclass(frozen=True)
class Target:
    url: URL
    key: str  # whose secret signs the deliveries


class WebhookSender:
    """Callback targets of this process's sessions, and their deliveries in flight."""

    def __init__(self, settings: WebhookSettings, secret_of: Callable[[str], str | None],
                 metrics: Metrics) -> None:
        self.settings = settings
        self._secret_of = secret_of
        self._metrics = metrics
        self._targets: dict[str, Target] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False

    def accept(self, raw: str | None, key: str) -> Target | None:
        """A session's callback_url field checked at creation (4001 when refused)."""
        if raw is None or not raw.strip():
            return None
        url = check_callback_url(raw.strip(), self.settings)
        if not self._secret_of(key):
            raise MalformedField(FIELD, "refused", "a callback needs a session created "
                                 "with an API key (its secret signs the delivery)")
        return Target(url, key)

    def register(self, session_id: str, target: Target | None) -> None:
        if target is not None:
            self._targets[session_id] = target

    def session_final(self, session_id: str, result: dict[str, Any] | None) -> None:
        """A session reached a final state: deliver its result if it has a callback (an
        expired or deleted session has no result and gets no callback)."""
        target = self._targets.pop(session_id, None)
        if target is None or result is None:
            return
        if self._closed:
            log.warning("webhook not sent: the service is shutting down")
            self._metrics.webhook_deliveries.labels("cancelled").inc()
            return
        task = asyncio.create_task(self._deliver(target, result), name="webhook")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, target: Target, result: dict[str, Any]) -> None:
        cfg = self.settings
        webhook_id = secrets.token_hex(16)
        body = json.dumps(result).encode()
        host = target.url.raw_host
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = "failed"
        secret = self._secret_of(target.key)
        try:
            if secret is None:  # cannot happen while keys are fixed at start-up
                log.error("webhook %s not sent: its API key has no secret", webhook_id)
                return
            for attempt in range(1, cfg.max_attempts + 1):
                answer = await self._attempt(target.url, secret, webhook_id, body)
                self._metrics.webhook_attempts.labels(
                    answer if answer in ("timeout", "error") else
                    ("2xx" if answer.startswith("2") else "non_2xx")).inc()
                fields = {"webhook_id": webhook_id, "host": host, "attempt": attempt,
                          "answer": answer}
                if answer.startswith("2"):
                    outcome = "delivered"
                    log.info("webhook %s delivered to %s (attempt %d, HTTP %s)",
                             webhook_id, host, attempt, answer, extra={"fields": fields})
                    return
                delay = cfg.backoff_s * 2 ** (attempt - 1)
                last = attempt == cfg.max_attempts or (
                    loop.time() - started + delay + cfg.timeout_s > cfg.max_total_s)
                log.warning("webhook %s to %s: attempt %d got %s%s", webhook_id, host,
                            attempt, answer, "; giving up" if last else
                            f"; retrying in {delay:g} s", extra={"fields": fields})
                if last:
                    return
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._metrics.webhook_deliveries.labels(outcome).inc()

    async def _attempt(self, url: URL, secret: str, webhook_id: str, body: bytes) -> str:
        """One POST: its HTTP status as text, or "timeout" / "error"."""
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Webhook-Id": webhook_id,
                   "X-Timestamp": timestamp,
                   "X-Signature": signature(secret, timestamp, body)}
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                headers={"User-Agent": "verification-service-webhooks"})
        try:
            async with self._http.post(url, data=body, headers=headers,
                                       allow_redirects=False) as response:
                return str(response.status)
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError:
            return "error"

    async def close(self) -> None:
        """Shutdown: pending deliveries are cancelled (each counted as cancelled)."""
        self._closed = True
        self._targets.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()


WEBHOOKS = web.AppKey("webhooks", WebhookSender)
