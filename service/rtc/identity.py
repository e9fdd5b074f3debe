"""Identity jobs: a stream's identity samples embedded as pool jobs of their own.

The liveness engine (built with `defer_identity`) hands out an identity sample (a face
at a random time, service.liveness.replacement) with the frame's report instead of
embedding it inside the frame's analysis: a frame's analysis never waits for one. The
sample is embedded as a separate job, admitted even when the pool is busy (a decision
needs its identity samples), and its embedding is given back to the engine between two
frames, on the event loop: the engine is never used from two threads at once. At most
one is in flight; before the decision the last one is waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from service.liveness.engine import IdentitySample, LivenessEngine

log = logging.getLogger("service.rtc")

Embed = Callable[[IdentitySample], Coroutine[Any, Any, np.ndarray]]


class IdentityJobs:
    def __init__(self, embed: Embed) -> None:
        """`embed`: the sample's face embedded as a required pool job."""
        self.embed = embed
        # the identity sample being embedded (at most one) and its job
        self.pending: tuple[IdentitySample, asyncio.Task[np.ndarray]] | None = None

    def start(self, sample: IdentitySample) -> None:
        self.pending = (sample, asyncio.create_task(self.embed(sample), name="identity"))

    def cancel(self) -> None:
        if self.pending is not None:
            self.pending[1].cancel()

    async def settle(self, engine: LivenessEngine | None, wait: bool) -> None:
        """Give a finished job's embedding back to the engine (a failed one is a lost
        sample); with `wait`, after waiting for the one still running (before the
        decision)."""
        if self.pending is None:
            return
        sample, job = self.pending
        if not job.done():
            if not wait:
                return
            await asyncio.wait([job])
        self.pending = None
        if engine is None:
            return
        if job.cancelled() or job.exception() is not None:
            if not job.cancelled():
                log.warning("identity sample not embedded: %r", job.exception())
            engine.sample_lost()
        else:
            engine.identified(sample, job.result())
