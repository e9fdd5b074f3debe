"""Run model code off the event loop in a bounded pool, one model instance per thread.

Why per-thread instances: OpenCV's dnn networks keep per-call state (input size, blobs)
and must not be shared across threads; giving each worker its own copy avoids locks.
Why bounded: when the work already queued would keep a new job waiting longer than
the target (service.vision.admission), callers get RateLimited ("busy") at once instead
of queueing work the machine cannot finish in time.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2

from service.errors import InternalError, RateLimited
from service.media.pool import DecoderPool
from service.ops.metrics import Metrics
from service.vision.admission import Admission, AdmissionSettings
from service.vision.detection import FaceDetector
from service.vision.embedding import FaceEmbedder
from service.vision.landmarks import LandmarkerPool
from service.vision.pad import PresentationAttackDetector
from service.vision.presence import FacePresence

T = TypeVar("T")


class ModelRuntime:
    def __init__(self, paths: dict[str, Path], workers: int,
                 admission: AdmissionSettings = AdmissionSettings(),
                 metrics: Metrics | None = None) -> None:
        # Parallelism comes from our worker threads; OpenCV's own thread pool on top
        # would oversubscribe the cores.
        cv2.setNumThreads(1)
        self._paths = paths
        self._workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="models")
        self._local = threading.local()
        self.admission = Admission(workers, admission)
        # the app's metrics (stage timings, refusals, the queue); a private set otherwise
        self.metrics = metrics or Metrics()
        self.metrics.watch_model_pool(
            queued=lambda: self.admission.pending - self.admission.running,
            in_flight=lambda: self.admission.pending, wait_s=self.admission.expected_wait_s)
        # one per stream or clip being analysed; a few kept warm between them
        self.landmarkers = LandmarkerPool(
            max_idle=max(2, workers * 2),
            on_detect=lambda seconds: self.metrics.observe_stage("landmarks", seconds))
        # client images and videos are decoded in these processes, one per worker thread
        self.decoders = DecoderPool(workers)

    def detector(self) -> FaceDetector:
        if not hasattr(self._local, "detector"):
            self._local.detector = FaceDetector(self._paths["face_detector"])
        return self._local.detector

    def presence(self) -> FacePresence:
        if not hasattr(self._local, "presence"):
            self._local.presence = FacePresence()
        return self._local.presence

    def embedder(self) -> FaceEmbedder:
        if not hasattr(self._local, "embedder"):
            self._local.embedder = FaceEmbedder(self._paths["face_embedder"])
        return self._local.embedder

    def embed(self, bgr, face):  # type: ignore[no-untyped-def]
        """Embed with the calling worker thread's own embedder (for code that may run on
        any worker thread, like a stream's successive frames)."""
        return self.embedder()(bgr, face)

    def pad(self) -> PresentationAttackDetector:
        if not hasattr(self._local, "pad"):
            self._local.pad = PresentationAttackDetector(self._paths)
        return self._local.pad

    async def run(self, fn: Callable[..., T], *args: object, first_guess_s: float = 0.05,
                  required: bool = False) -> T:
        """Run `fn(*args)` on a worker thread once admitted (RateLimited when the pool is
        too far behind; see service.vision.admission). `first_guess_s` is how long a job
        of this kind is expected to take until one has been measured."""
        try:
            ticket = self.admission.admit(getattr(fn, "__qualname__", repr(fn)),
                                          first_guess_s, required)
        except RateLimited:
            self.metrics.model_refusals.inc()
            raise

        def job() -> T:
            ticket.start()
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                ticket.finish(time.perf_counter() - started)

        # the worker thread logs with the caller's request and session ids
        context = contextvars.copy_context()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                    context.run, job)
        finally:
            ticket.finish()  # no-op once the job ran; releases a job abandoned in the queue

    def warm_up(self) -> None:
        """Load every model in every worker thread now, not on the first request."""
        barrier = threading.Barrier(self._workers)

        def load() -> None:
            self.detector()
            self.presence()
            self.embedder()
            self.pad()
            barrier.wait(timeout=60)  # keeps each job on its own thread

        for future in [self._executor.submit(load) for _ in range(self._workers)]:
            future.result()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.landmarkers.close()
        self.decoders.close()


@dataclass
class RuntimeSlot:
    """The model runtime once it is loaded: what request handlers wait for, then use.
    The composition root (service/app.py) loads the models after the app starts and
    fills the slot, or records why loading failed."""

    _runtime: ModelRuntime | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    load_error: str = ""

    @property
    def runtime(self) -> ModelRuntime:
        if self._runtime is None:
            raise InternalError("models are not loaded")
        return self._runtime

    def set_runtime(self, runtime: ModelRuntime) -> None:
        self._runtime = runtime
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float = 120.0) -> None:
        if self.load_error:
            raise InternalError("models failed to load")
        await asyncio.wait_for(self._ready.wait(), timeout)
