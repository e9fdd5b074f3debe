"""The HTTP side of the metrics: the middleware that counts every request and the
`GET /metrics` route (behind the optional bearer token). The registry and what it counts
live in service/ops/metrics.py."""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from service.errors import BadCredentials
from service.http.auth import Authenticator
from service.ops.metrics import (
    ENVELOPE_STATUS,
    ENVELOPE_STATUSES,
    METHODS,
    METRICS,
    TYPE_ID,
    Metrics,
    MetricsSettings,
    type_id_label,
)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _envelope_status(response: web.StreamResponse | None) -> str:
    """The messageString status of a verify answer, as its builder labelled it."""
    status = response.get(ENVELOPE_STATUS) if response is not None else None
    if status is None:
        return "none"
    return status if status in ENVELOPE_STATUSES else "other"


@web.middleware
async def metrics_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Count every request by route template, method and status (outside the envelope
    middleware, so it sees the answer as sent); verify requests also by typeId and
    envelope status."""
    metrics = request.app[METRICS]
    started = time.perf_counter()
    response: web.StreamResponse | None = None
    status = 500  # an exception the envelope middleware lets through (a cancellation)
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects pass through the envelope middleware
        status = exc.status
        raise
    finally:
        method = request.method if request.method in METHODS else "other"
        metrics.http_requests.labels(_route(request), method, str(status)).inc()
        if TYPE_ID in request:
            type_id = type_id_label(request[TYPE_ID])
            metrics.verify_requests.labels(type_id, _envelope_status(response)).inc()
            metrics.verify_seconds.labels(type_id).observe(time.perf_counter() - started)


def add_metrics_route(app: web.Application, metrics: Metrics, settings: MetricsSettings,
                      auth: Authenticator) -> None:
    """GET /metrics: the Prometheus exposition of this app's registry, behind the
    optional bearer token."""
    app[METRICS] = metrics
    expected = settings.bearer_token.encode()

    async def check(token: str) -> None:
        if not hmac.compare_digest(token.encode(), expected):
            raise BadCredentials("bad metrics token")

    async def scrape(request: web.Request) -> web.Response:
        if expected:
            await auth.check_bearer(request.remote or "-", request.headers.get("Authorization"),
                              check)
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type,
                                                "Cache-Control": "no-store"})

    app.router.add_get("/metrics", scrape)
