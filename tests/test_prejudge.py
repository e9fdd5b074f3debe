"""Pre-judging (service/rtc/prejudge.py): a stream's kept best frames judged ahead of its
decision, on the caller's clock: a settled frame once, a refusal backed off, and never a
frame judged twice, ahead or at the decision.

The judgement is the real one (service.judging.video.judge_frame, quality gates and
all) on a synthetic face; only the presentation-attack model is a stub that counts its
calls, so every judgement made is seen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import pytest

from service.errors import RateLimited
from service.judging.silent import SilentSettings
from service.judging.video import judge_best_frame, judge_frame
from service.liveness.best_frame import BestFrame, BestFrameKeeper, FrameQuality
from service.liveness.engine import ClipEvidence
from service.ops.metrics import Metrics
from service.rtc.prejudge import REFUSED_BACKOFF_S, PreJudge, judged_ahead
from service.vision.detection import Detection
from service.vision.faces import FaceSearchSettings

SETTLE_S = 2.0  # SessionSettings.prejudge_after_s


@dataclass
class PadAnswer:
    live_probability: float
    per_model: tuple[float, ...] = ()


class Models:
    """The model runtime as judge_frame uses it: the face is already known (frame.face),
    so only the PAD model runs; it answers 0.9 and counts the faces it was shown."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.judged: list[int] = []  # id() of each image judged

    def pad(self):  # type: ignore[no-untyped-def]
        def judge(image: np.ndarray, box: object) -> PadAnswer:
            self.judged.append(id(image))
            return PadAnswer(0.9, (0.9,))
        return judge


def frame_at(t: float) -> BestFrame:
    """A kept frame at stream time `t` whose face passes the quality gates: sharp, mid
    grey, frontal, 200 px."""
    rng = np.random.default_rng(int(t * 10))
    image = rng.integers(60, 200, size=(200, 200, 3), dtype=np.uint8)
    points = np.array([[70, 80], [130, 80], [100, 110], [80, 150], [120, 150]], np.float32)
    quality = FrameQuality(sharpness=300.0, brightness=128.0, yaw=0.0, eyes_open=1.0,
                           face_px=160.0)
    return BestFrame(t, image, np.zeros((478, 3), np.float32), quality, quality.score(),
                     face=Detection((0.0, 0.0, 200.0, 200.0), points, 0.9))


def keeper_of(*times: float) -> BestFrameKeeper:
    keeper = BestFrameKeeper()
    keeper.frames = [frame_at(t) for t in times]
    return keeper


class Judge:
    """What the runner hands PreJudge (a pool job of judge_frame), without the pool:
    `refuse` jobs are refused as a busy pool does; `gate`, when set, holds each job."""

    def __init__(self, models: Models, refuse: int = 0) -> None:
        self.models = models
        self.refuse = refuse
        self.calls: list[BestFrame] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, frame: BestFrame) -> object:
        self.calls.append(frame)
        if self.refuse:
            self.refuse -= 1
            raise RateLimited("busy")
        if self.gate is not None:
            await self.gate.wait()
        return judge_frame(self.models, frame, FaceSearchSettings(),  # type: ignore[arg-type]
                           SilentSettings())


async def test_a_settled_kept_frame_is_judged_ahead_exactly_once():
    models = Models()
    keeper = keeper_of(1.0)
    judge = Judge(models)
    prejudge = PreJudge(judge, SETTLE_S)
    prejudge.step(1.0 + SETTLE_S - 0.1, keeper)  # not settled yet
    assert prejudge.job is None and judge.calls == []
    for t in (3.0, 3.1, 3.2, 4.0, 9.0):
        prejudge.step(t, keeper)
        await prejudge.settled()
    assert judge.calls == keeper.frames and len(models.judged) == 1
    judgement, problem = keeper.frames[0].judged or (None, "not judged")
    assert judgement is not None and judgement.live and problem == ""
    assert judged_ahead(keeper.frames) == 1


async def test_one_job_at_a_time_and_only_settled_frames():
    models = Models()
    keeper = keeper_of(1.0, 1.5, 4.0)  # the third settles at 6.0
    judge = Judge(models)
    judge.gate = asyncio.Event()
    prejudge = PreJudge(judge, SETTLE_S)
    prejudge.step(3.6, keeper)
    first = prejudge.job
    prejudge.step(3.7, keeper)  # the first job still runs: no second one
    assert first is not None and prejudge.job is first
    judge.gate.set()
    await prejudge.settled()
    assert judge.calls == [keeper.frames[0]]
    prejudge.step(3.8, keeper)
    await prejudge.settled()
    prejudge.step(3.9, keeper)
    assert judge.calls == keeper.frames[:2] and prejudge.job is None
    prejudge.step(6.0, keeper)
    await prejudge.settled()
    assert judge.calls == keeper.frames and len(models.judged) == 3


async def test_a_refused_job_backs_off_a_second():
    models = Models()
    keeper = keeper_of(1.0)
    judge = Judge(models, refuse=1)
    prejudge = PreJudge(judge, SETTLE_S)
    prejudge.step(3.0, keeper)
    await prejudge.settled()  # refused by the pool: no error
    assert keeper.frames[0].judged is None
    prejudge.step(3.1, keeper)  # the refusal is seen: nothing ahead for a second
    assert prejudge.not_before == pytest.approx(3.1 + REFUSED_BACKOFF_S)
    for t in (3.2, 3.6, 4.05):
        prejudge.step(t, keeper)
    assert len(judge.calls) == 1 and prejudge.job is None
    prejudge.step(4.1, keeper)
    await prejudge.settled()
    assert len(judge.calls) == 2 and keeper.frames[0].judged is not None
    assert len(models.judged) == 1


async def test_the_decision_does_not_judge_again_a_frame_judged_ahead():
    models = Models()
    keeper = keeper_of(1.0, 1.5, 4.0)
    prejudge = PreJudge(Judge(models), SETTLE_S)
    for t in (3.6, 3.7):  # the two older frames are judged ahead, the newest is not
        prejudge.step(t, keeper)
        await prejudge.settled()
    assert judged_ahead(keeper.frames) == 2 and len(models.judged) == 2
    evidence = ClipEvidence(analysed=50, with_face=50, competing=0, events=[],
                            best=keeper.best, identity={}, duration_s=5.0,
                            candidates=list(keeper.frames))
    judgement, _ = judge_best_frame(models, evidence, FaceSearchSettings(),  # type: ignore[arg-type]
                                    SilentSettings())
    assert judgement is not None
    # the decision judged the newest frame only: each frame once in all
    assert sorted(models.judged) == sorted(id(f.image) for f in keeper.frames)
