"""Pre-judging: a stream's kept best frames judged (silent liveness) ahead of its decision.

While the person still acts, a kept best frame that has stayed among the best for
`SessionSettings.prejudge_after_s` is judged as a pool job of its own, between two
frames (the engine is idle then), one job at a time. The judgement is kept on the frame
(service.judging.video.judge_frame), so the decision after the last challenge judges
only the newest kept frames, never one judged ahead. A job the busy pool refuses
(RateLimited) is no error: nothing is judged ahead for `REFUSED_BACKOFF_S`, and what is
left is judged by the decision.

Whether a given frame gets judged ahead depends on timing (frames settle, are pushed
out by better ones, the pool may refuse): the decision is the same either way, only
its wait differs. The clock is the caller's (`t`, seconds of the stream), so the rule
is testable without one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from service.errors import RateLimited
from service.liveness.best_frame import BestFrame, BestFrameKeeper

log = logging.getLogger("service.rtc")

# After the pool refused a job: no job ahead before this many seconds of the stream.
REFUSED_BACKOFF_S = 1.0

JudgeFrame = Callable[[BestFrame], Coroutine[Any, Any, object]]


class PreJudge:
    def __init__(self, judge: JudgeFrame, settle_s: float,
                 backoff_s: float = REFUSED_BACKOFF_S) -> None:
        """`judge` judges one frame and keeps the judgement on it (a pool job of
        service.judging.video.judge_frame); `settle_s`: how long a frame must have
        stayed among the kept ones."""
        self.judge = judge
        self.settle_s = settle_s
        self.backoff_s = backoff_s
        self.job: asyncio.Task[object] | None = None  # at most one
        self.not_before = 0.0  # no job ahead before this time (the pool refused one)

    def step(self, t: float, keeper: BestFrameKeeper) -> None:
        """At stream time `t`, between two frames: start judging a settled kept frame
        unless a job is still running or the pool refused one less than a backoff ago."""
        job = self.job
        if job is not None and not job.done():
            return
        if job is not None and not job.cancelled() and job.exception() is not None:
            if not isinstance(job.exception(), RateLimited):
                log.warning("best frame not judged ahead: %r", job.exception())
            self.not_before = t + self.backoff_s  # the pool is busy: not before a while
        self.job = None
        if t < self.not_before:
            return
        frame = keeper.settled_unjudged(t, self.settle_s)
        if frame is not None:
            self.job = asyncio.create_task(self.judge(frame), name="prejudge")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    async def settled(self) -> None:
        """Wait for the job under way (before the decision: it judges what this did
        not, and never two threads one frame)."""
        if self.job is None:
            return
        await asyncio.wait([self.job])
        if not self.job.cancelled():
            self.job.exception()  # retrieved: a refusal is no error here


def judged_ahead(frames: list[BestFrame]) -> int:
    """How many of the decision's frames were judged before it (none is judged twice)."""
    return sum(f.judged is not None for f in frames)
