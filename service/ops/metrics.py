"""Prometheus metrics of one running app (`GET /metrics`): what an operator alerts on.

Why a registry per app, not prometheus_client's global one: the tests build many apps in
one process, and each app's /metrics must show its own counts. Why no user, key or
session labels: every label value comes from a small fixed set (route templates,
typeIds, envelope statuses, stage names, reason codes), so the number of series stays
bounded whatever clients send, and a scrape says nothing about who was verified.

Instrumented code calls one method at its edge (`observe_stage`, `timed`, `session_final`
...); gauges of live state (sessions, peers, the model pool's queue) are read when
scraped, so nothing has to keep them in step.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import TypeVar

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

from service import errors

T = TypeVar("T")
# The `_created` timestamp series of every counter and histogram double the scrape and
# say only when the process started (process-wide switch of prometheus_client).
disable_created_metrics()


@dataclass(frozen=True)
class MetricsSettings:
    # When set, GET /metrics needs `Authorization: Bearer <token>` (a wrong one counts
    # toward the per-address lockout, as any bad credential). Empty: open, for a
    # service bound to a private address or a scraper on the same network policy.
    bearer_token: str = ""


# The timed stages of the analysis (service_stage_duration_seconds{stage}).
STAGES = ("decode", "detection", "landmarks", "silent_liveness", "comparison")
TYPE_IDS = ("21", "3035")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Every status an envelope can carry (errors.py), plus success and "pending".
ENVELOPE_STATUSES = frozenset(
    {"2000", "2020"} | {cls.status for cls in vars(errors).values()
                        if isinstance(cls, type) and issubclass(cls, errors.ApiError)})
# A verify request's typeId as sent, set by its handler (service/api/verify.py).
TYPE_ID = web.RequestKey("type_id", str)
# The messageString status of the envelope a response carries, set where the envelope
# is built (the verify handler, service.http.server.error_response): counted without
# reading the body back.
ENVELOPE_STATUS = web.ResponseKey("envelope_status", str)

# Stages take 1 ms (landmarks) to seconds (decoding a clip); requests and sessions longer.
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DECISION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SESSION_BUCKETS = (2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_FPS_BUCKETS = (1.0, 2.0, 4.0, 6.0, 8.0, 9.0, 10.0, 12.0, 15.0, 20.0, 30.0)


def type_id_label(raw: str | None) -> str:
    value = (raw or "").strip()
    return value if value in TYPE_IDS else ("none" if not value else "other")


def _versions() -> dict[str, str]:
    info = {"python": platform.python_version()}
    for label, dist in (("version", "verification-service"), ("aiohttp", "aiohttp"),
                        ("aiortc", "aiortc"), ("onnxruntime", "onnxruntime"),
                        ("mediapipe", "mediapipe")):
        try:
            info[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[label] = "unknown"
    return info


class Metrics:
    def __init__(self, reason_codes: Iterable[str] = ()) -> None:
        """`reason_codes`: every code a decision's reason may carry
        (service.judging.decision.ReasonCode, handed over by service.app), the label
        values of the failure reasons; any other counts as "other"."""
        self.reason_codes = frozenset(reason_codes)
        self.registry = r = CollectorRegistry()
        Info("service_build", "Versions of the service and its main libraries",
             registry=r).info(_versions())
        self.http_requests = Counter(
            "service_http_requests", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=r)
        self.verify_requests = Counter(
            "service_verify_requests", "POST /api/verify by typeId and envelope status",
            ["type_id", "status"], registry=r)
        self.verify_seconds = Histogram(
            "service_verify_duration_seconds", "POST /api/verify answer time by typeId",
            ["type_id"], buckets=_REQUEST_BUCKETS, registry=r)
        self.sessions = Counter(
            "service_sessions", "Streaming sessions that reached a final state, by outcome "
            "(live, not_live, error, expired, ended)", ["outcome"], registry=r)
        self.session_failures = Counter(
            "service_session_failure_reasons", "Reasons of sessions decided not live "
            "(each reason counted) or answered with an error status", ["reason"],
            registry=r)
        self.decision_seconds = Histogram(
            "service_session_decision_seconds", "From the end of a stream's analysis to "
            "its result on the data channel (best-frame scoring, comparison, fusion)",
            buckets=_DECISION_BUCKETS, registry=r)
        self.session_seconds = Histogram(
            "service_session_duration_seconds", "From session creation to its result",
            buckets=_SESSION_BUCKETS, registry=r)
        self.stage_seconds = Histogram(
            "service_stage_duration_seconds", "Time of one analysis stage call: decode (a "
            "client image or clip, in the decoder worker, timed from the service), face "
            "detection, landmarks (one frame), silent liveness (PAD on one face), "
            "comparison (embedding one face and comparing)",
            ["stage"], buckets=_STAGE_BUCKETS, registry=r)
        self.stream_fps = Histogram(
            "service_stream_analysed_fps", "Frames analysed per second of a stream, per "
            "session", buckets=_FPS_BUCKETS, registry=r)
        self.stream_frames = Counter(
            "service_stream_frames", "Frames of streams (counted when a stream ends): "
            "received from the peer, analysed, dropped by latest-frame-wins",
            ["outcome"], registry=r)
        self.model_refusals = Counter(
            "service_model_pool_refusals", "Jobs the model pool refused (answered 4290 "
            "busy, or a stream frame skipped)", registry=r)
        self.webhook_deliveries = Counter(
            "service_webhook_deliveries", "Webhook deliveries by final outcome "
            "(delivered, failed, cancelled)", ["outcome"], registry=r)
        self.webhook_attempts = Counter(
            "service_webhook_attempts", "Webhook HTTP attempts by result (2xx, non_2xx, "
            "timeout, error)", ["result"], registry=r)
        # every fixed label value from the start: a rate() alert needs the series at 0
        for counter, values in (
                (self.stream_frames, ("received", "analysed", "dropped")),
                (self.sessions, ("live", "not_live", "error", "expired", "ended")),
                (self.session_failures, tuple(sorted(self.reason_codes))),
                (self.webhook_deliveries, ("delivered", "failed", "cancelled")),
                (self.webhook_attempts, ("2xx", "non_2xx", "timeout", "error"))):
            for label in values:
                counter.labels(label)
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        # Live state, read at scrape time from the objects that hold it.
        self._queued: Callable[[], float] = lambda: 0.0
        self._in_flight: Callable[[], float] = lambda: 0.0
        self._wait: Callable[[], float] = lambda: 0.0
        self._active: Callable[[], float] = lambda: 0.0
        self._peers: Callable[[], float] = lambda: 0.0
        Gauge("service_model_pool_queue_depth", "Admitted model jobs waiting for a worker",
              registry=r).set_function(lambda: self._queued())
        Gauge("service_model_pool_jobs_in_flight", "Admitted model jobs, queued or running",
              registry=r).set_function(lambda: self._in_flight())
        Gauge("service_model_pool_expected_wait_seconds", "Estimated wait of a new model "
              "job (the admission rule's measure)", registry=r
              ).set_function(lambda: self._wait())
        Gauge("service_sessions_active", "Streaming sessions created, connected or "
              "deciding", registry=r).set_function(lambda: self._active())
        Gauge("service_peer_connections", "Open WebRTC peer connections",
              registry=r).set_function(lambda: self._peers())

    # --- wiring: where live state is read ---------------------------------------

    def watch_model_pool(self, queued: Callable[[], float], in_flight: Callable[[], float],
                         wait_s: Callable[[], float]) -> None:
        self._queued, self._in_flight, self._wait = queued, in_flight, wait_s

    def watch_sessions(self, active: Callable[[], float], peers: Callable[[], float]) -> None:
        self._active, self._peers = active, peers

    # --- one-line calls at the edges ----------------------------------------------

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time the block as one call of `stage` (also when it raises: a refused image
        cost its decoding time too)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe_stage(stage, time.perf_counter() - started)

    def timed_iter(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        """`items`, with the time spent producing them (not the caller's time between
        them) observed as one call of `stage` once they are exhausted or fail."""
        spent = 0.0
        iterator = iter(items)
        try:
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    spent += time.perf_counter() - started
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator left early stops now, not when collected
                close()
            self.observe_stage(stage, spent)

    def stream_ended(self, received: int, analysed: int, dropped: int, seconds: float
                     ) -> None:
        self.stream_frames.labels("received").inc(received)
        self.stream_frames.labels("analysed").inc(analysed)
        self.stream_frames.labels("dropped").inc(dropped)
        if analysed and seconds > 0:
            self.stream_fps.observe(analysed / seconds)

    def session_final(self, state: str, status: str | None, reasons: Iterable[str],
                      seconds: float | None) -> None:
        """A session reached a final state: decided with an answer of envelope `status`
        (2000: a decision, live when it has no `reasons`, their codes), expired or ended
        (`status` None: no answer)."""
        if status is None:
            self.sessions.labels(state).inc()
            return
        if status != "2000":
            self.sessions.labels("error").inc()
            self.session_failures.labels(
                f"status_{status}" if status in ENVELOPE_STATUSES else "other").inc()
        else:
            codes = list(reasons)
            self.sessions.labels("not_live" if codes else "live").inc()
            for code in codes:
                self.session_failures.labels(
                    code if code in self.reason_codes else "other").inc()
        if seconds is not None:
            self.session_seconds.observe(seconds)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape in the format the scraper asked for (text 0.0.4 by default)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


METRICS = web.AppKey("metrics", Metrics)
