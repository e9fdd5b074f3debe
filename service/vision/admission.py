"""Admission to the model pool: refuse work at once rather than queue it for long.

Why an expected-wait rule rather than a fixed queue length: jobs differ by three orders
of magnitude (a stream frame ~10 ms, a face comparison ~60 ms, an uploaded clip
seconds), so "64 jobs may wait" meant a few milliseconds for frames and half a minute
for videos (50 concurrent uploads once waited p50 16 s, max 33 s). Here each job kind's
duration is learned (the median of its last few durations, so one outlier - a faceless
4000 px photo takes seconds where a selfie takes 60 ms - does not make every later job
of its kind look expensive), the work already queued is the sum of those estimates,
and a new job is admitted when a worker is free for it, or while that queued work,
spread over the pool's workers, is under `target_wait_s`. So the queue length is
derived from the pool size and the target wait: ~2 clips per worker, dozens of
comparisons, hundreds of frames, and the excess answers 4290 "busy" immediately.

`max_pending` stays as a hard cap on jobs in flight, because each one holds its request
bytes (up to the request limit) until it runs.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass

from service.errors import RateLimited


@dataclass(frozen=True)
class AdmissionSettings:
    # Longest a newly admitted job should wait for a worker. 3 s keeps an upload's answer
    # within a few seconds of its analysis time, and stream frames (skipped when refused)
    # fresh; past it the client is told "busy" and may retry.
    target_wait_s: float = 3.0
    # Jobs admitted but not finished, whatever their kind (each holds its request bytes).
    max_pending: int = 32
    # Durations remembered per job kind; the estimate is their median.
    history: int = 9


class Ticket:
    """One admitted job: its estimate is queued work until a worker starts it."""

    def __init__(self, admission: Admission, kind: str, estimate_s: float) -> None:
        self._admission = admission
        self.kind = kind
        self.estimate_s = estimate_s
        self._started = False
        self._closed = False

    def start(self) -> None:
        with self._admission.lock:
            if not self._started and not self._closed:
                self._started = True
                self._admission.queued_s -= self.estimate_s
                self._admission.running += 1

    def finish(self, seconds: float | None = None) -> None:
        """The job ran (`seconds` it took) or was abandoned before running (None)."""
        with self._admission.lock:
            if self._closed:
                return
            self._closed = True
            if not self._started:
                self._admission.queued_s -= self.estimate_s
            else:
                self._admission.running -= 1
            self._admission.pending -= 1
            if seconds is not None:
                self._admission.learn(self.kind, seconds)


class Admission:
    def __init__(self, workers: int, params: AdmissionSettings = AdmissionSettings()) -> None:
        self.workers = max(1, workers)
        self.params = params
        self.lock = threading.Lock()
        self.queued_s = 0.0  # estimated seconds of admitted jobs no worker has started
        self.pending = 0
        self.running = 0  # admitted jobs a worker has started (pending - running wait)
        self._durations: dict[str, deque[float]] = {}

    def expected_wait_s(self) -> float:
        return max(0.0, self.queued_s) / self.workers

    def estimate_s(self, kind: str, first_guess_s: float) -> float:
        durations = self._durations.get(kind)
        return statistics.median(durations) if durations else first_guess_s

    def admit(self, kind: str, first_guess_s: float, required: bool = False) -> Ticket:
        """A ticket for one job of `kind`; RateLimited when the pool is too far behind.

        `required` jobs (the decision of a session already streaming) are always
        admitted: refusing them would throw away the work the session already did.
        """
        with self.lock:
            if not required:
                if self.pending >= self.params.max_pending:
                    raise RateLimited("busy: too many requests in progress, retry shortly")
                worker_free = self.pending < self.workers
                if not worker_free and self.expected_wait_s() > self.params.target_wait_s:
                    raise RateLimited("busy: the analysis queue is full, retry shortly")
            estimate = self.estimate_s(kind, first_guess_s)
            self.queued_s += estimate
            self.pending += 1
        return Ticket(self, kind, estimate)

    def learn(self, kind: str, seconds: float) -> None:
        """Remember one measured duration of `kind` (caller holds the lock)."""
        self._durations.setdefault(kind, deque(maxlen=self.params.history)).append(seconds)
