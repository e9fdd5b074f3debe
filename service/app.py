"""Build the aiohttp application: routes, error envelope, model loading, shutdown."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from models.manifest import resolve_models
from service.api.body_parser import BodyParser, add_body_parser
from service.api.verify import VERIFY_API, VerifyApi, VerifySettings, verify
from service.cluster.replica import default_public_url
from service.cluster.shared_state import SharedState, open_shared_state
from service.config import Config
from service.errors import ApiError, InternalError, MalformedField, RequestTimeout, TooLarge
from service.http.auth import Authenticator
from service.http.forwarded import forwarded_middleware
from service.http.metrics import add_metrics_route, metrics_middleware
from service.http.openapi import add_openapi_route
from service.http.server import BodyTimeout, closing, error_response, http_error_response
from service.http.web import add_web_routes
from service.judging.decision import ReasonCode
from service.ops.logs import echo_request_id, request_id_middleware
from service.ops.metrics import METRICS, Metrics
from service.ops.webhooks import WEBHOOKS, WebhookSender
from service.rtc.manager import SessionManager
from service.rtc.routes import MANAGER, SessionApi, SessionApiSettings, add_session_routes
from service.rtc.runner import StreamSettings
from service.state import STATE, ServiceState
from service.vision.runtime import ModelRuntime

log = logging.getLogger("service")

# Every file the running service loads, verified (sha256) before it serves; the
# MediaPipe ones are read by mediapipe from its own package, and checked there.
MODEL_NAMES = ["face_detector", "face_embedder", "pad_minifasnet_v2", "pad_minifasnet_v1se",
               "face_landmarker", "face_landmarker_detector"]
LOADER = web.AppKey("loader", asyncio.Task)


@web.middleware
async def envelope_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Every failure leaves as the vendor envelope; internals never leak.

    aiohttp's own refusals raised while routing or reading (404, 405, 413) keep their
    HTTP status; the ones aiohttp answers outside the middleware (unparsable requests,
    417) are enveloped by service.http.server.
    """
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[STATE].config.max_request_bytes
        return error_response(TooLarge(f"request body is larger than {limit} bytes"))
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect is not a failure
            raise
        return http_error_response(exc)
    except RequestPayloadError:  # the body's chunked framing or Content-Encoding is broken
        return closing(error_response(MalformedField(
            "body", "malformed", "its transfer or content coding cannot be decoded")))
    except BodyTimeout:  # service.http.server: the body did not arrive in time
        return closing(error_response(RequestTimeout()))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        # A bug: its traceback is logged, with the path only (no query, no body).
        log.exception("unhandled error on %s %s", request.method, request.rel_url.raw_path)
        return error_response(InternalError())


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.app[MANAGER].replica.draining:  # SIGTERM: no new sessions (drain)
        return web.json_response({"status": "draining"}, status=503)
    if state.models.ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "loading", "error": state.models.load_error},
                             status=503)


async def _load_models(app: web.Application) -> None:
    state = app[STATE]
    cfg = state.config
    try:
        paths = await asyncio.to_thread(resolve_models, cfg.model_dir, MODEL_NAMES)
        runtime = ModelRuntime(paths, cfg.workers, cfg.admission, app[METRICS])
        await asyncio.to_thread(runtime.warm_up)
    except Exception as exc:
        state.models.load_error = str(exc)
        log.error("model loading failed: %s", exc)
        raise
    state.models.set_runtime(runtime)
    app[MANAGER].start(runtime)
    log.info("models loaded: %s", ", ".join(MODEL_NAMES))


async def _start(app: web.Application) -> None:
    app[LOADER] = asyncio.create_task(_load_models(app))


async def _stop(app: web.Application) -> None:
    app[LOADER].cancel()
    await app[MANAGER].close()
    await app[WEBHOOKS].close()
    await app[MANAGER].shared.close()
    models = app[STATE].models
    if models.ready:
        models.runtime.close()


def create_app(config: Config) -> web.Application:
    app = web.Application(
        middlewares=[forwarded_middleware(config.http.trusted_proxies),
                     request_id_middleware, metrics_middleware, envelope_middleware],
        client_max_size=config.max_request_bytes,
    )
    # replay cache, lockouts, quotas, session directory: in memory, or shared in Redis
    shared = open_shared_state(config.redis_url, config.replicas)
    app[STATE] = state = ServiceState(
        config=config,
        auth=Authenticator.from_settings(config.api_keys, config.auth, shared),
    )
    # large bodies parsed off the event loop
    add_body_parser(app, BodyParser(config.forms, config.media, config.max_request_bytes))
    app[VERIFY_API] = VerifyApi(_verify_settings(config), state.auth, state.models)
    app.router.add_post("/api/verify", verify)
    app.router.add_post("/", verify)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_openapi_route(app)
    add_session_routes(app, session_manager(config, shared),
                       SessionApi(_session_api_settings(config), state.auth, state.models))
    if config.web_dir.is_dir():
        add_web_routes(app, config.web_dir)
    _add_operations(app, config)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


def _verify_settings(config: Config) -> VerifySettings:
    """The root config's parts POST /api/verify reads (service/api/verify.py)."""
    return VerifySettings(
        max_request_bytes=config.max_request_bytes, forms=config.forms, media=config.media,
        faces=config.faces, compare=config.compare, silent=config.silent,
        engine=config.engine, video_policy=config.video_policy)


def _session_api_settings(config: Config) -> SessionApiSettings:
    """The root config's parts the session routes read (service/rtc/routes.py)."""
    return SessionApiSettings(
        sessions=config.sessions, max_request_bytes=config.max_request_bytes,
        forms=config.forms, demo_sessions=config.demo_sessions,
        cors_origin=config.cors_origin, media=config.media, faces=config.faces)


def session_manager(config: Config, shared: SharedState | None = None) -> SessionManager:
    """The streaming sessions' manager, handed its own sections of the config."""
    sections = StreamSettings(
        sessions=config.sessions, engine=config.engine, work_side=config.media.work_side,
        faces=config.faces, silent=config.silent, compare=config.compare,
        policy=config.video_policy)
    url = config.public_url or default_public_url(config.host, config.port)
    return SessionManager(sections, config.replicas, url, config.ice_servers, config.turn,
                          shared)


def _add_operations(app: web.Application, config: Config) -> None:
    """Request ids, /metrics and webhooks (service/ops/logs.py, metrics.py, webhooks.py)."""
    metrics = Metrics(reason_codes=[code.value for code in ReasonCode])
    manager, auth = app[MANAGER], app[STATE].auth
    add_metrics_route(app, metrics, config.metrics, auth)
    metrics.watch_sessions(active=manager.store.active_count,
                           peers=lambda: len(manager.peers))
    app[WEBHOOKS] = webhooks = WebhookSender(config.webhooks, auth.keys.get, metrics)
    manager.on_final.append(lambda s: metrics.session_final(
        s.state.value, s.outcome.status if s.outcome is not None else None,
        s.outcome.reason_codes() if s.outcome is not None else [],
        (s.decided_at or s.created_at) - s.created_at))
    manager.on_final.append(lambda s: webhooks.session_final(s.id, s.result))
    app.on_response_prepare.append(echo_request_id)


async def drain(app: web.Application) -> None:
    """SIGTERM (python -m service): /readyz 503 and no new sessions; running sessions
    finish (up to replicas.drain_grace_s) and their results are published."""
    await app[MANAGER].drain()
