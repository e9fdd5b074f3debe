"""One streaming session's analysis, the stream scheduler: newest frame -> engine ->
challenge script, until the stream ends; then its decision.

The loop samples the newest received frame at the stream analysis rate (latest-frame
wins, see intake.py; at the lower `waiting_fps` while the challenge script only waits
for its clock, ChallengeScript.frame_due) and runs frame conversion and the liveness
engine in the model pool (never on the event loop). Between two frames, while the
engine is idle, it hands the work that must not hold up a frame to its own pool jobs:
the identity samples the engine hands out (service/rtc/identity.py) and the kept best
frames that have settled, judged ahead of the decision (service/rtc/prejudge.py). It
drives the challenge script (service.liveness.challenges) two ways: by the clock
(`tick`, every pass of the loop, also while no frame comes, so a prompt or a release
goes out on time) and by each analysed frame's action state and cue events
(`observe`). Every script event becomes a message (service.rtc.messages) sent through
the session's outbox (data channel and events streams); for each prompt the outbox
says whether anyone could receive it, and a prompt nobody could see ends the session
as "challenges not delivered" (the decision's Challenges.NOT_DELIVERED).

It ends when the challenges are done or failed, the session deadline passes, the peer
goes away or sends no video; then service/rtc/decision.py decides on what the stream
left (the evidence, silent liveness on the best frames and, with a portrait, face
comparison), the result is published and every biometric dropped. The runner knows
the outbox only (send a message, learn who it reached), not the peer connection.

Time: frame states and cue events carry the sampling time on our monotonic clock
(seconds since the session started), the clock `tick` is given too, so "an onset
before its prompt" compares like with like.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import ApiError, InternalError, RateLimited
from service.judging.compare import CompareSettings
from service.judging.decision import VideoDecisionSettings
from service.judging.silent import SilentSettings
from service.judging.video import judge_frame
from service.liveness.best_frame import BestFrame
from service.liveness.challenges import ChallengeScript, Event, Prompt
from service.liveness.engine import EngineSettings, FrameReport, IdentitySample, LivenessEngine
from service.media.frames import frame_from_av
from service.ops.logs import start_task_context
from service.rtc import messages as msg
from service.rtc.decision import StreamDecider, StreamEnd, StreamOutcome, log_decision
from service.rtc.identity import IdentityJobs
from service.rtc.intake import LatestFrame
from service.rtc.linkstats import LinkMonitor
from service.rtc.outbox import Delivery
from service.rtc.prejudge import PreJudge
from service.rtc.session import Session, SessionSettings, SessionState
from service.rtc.stalls import NETWORK, LinkSample, StallWatch
from service.vision.faces import FaceSearchSettings
from service.vision.landmarks import FaceLandmarker
from service.vision.runtime import ModelRuntime

log = logging.getLogger("service.rtc")

NOT_DELIVERED = "challenges not delivered"  # why the stream ended (StreamRun.ended_by)


@dataclass(frozen=True)
class StreamSettings:
    """The settings sections a stream's analysis reads, each its own (handed over by
    the composition root, service.app)."""

    sessions: SessionSettings
    engine: EngineSettings
    work_side: int  # frames are analysed at most this large (MediaSettings.work_side)
    faces: FaceSearchSettings
    silent: SilentSettings
    compare: CompareSettings
    policy: VideoDecisionSettings


class StreamRun:
    def __init__(self, session: Session, runtime: ModelRuntime, sections: StreamSettings,
                 on_done: Callable[[Session], None],
                 publish: Callable[[Session], Awaitable[None]],
                 link: LinkMonitor | None = None, channel_offered: bool = False) -> None:
        self.session = session
        self.runtime = runtime
        self.sections = sections
        self.settings = sections.sessions
        self.outbox = session.outbox
        self.on_done = on_done
        self.publish = publish  # the decision to every replica (session directory)
        # the prompts' timing must be unpredictable: the system's random source
        self.script = ChallengeScript(list(session.challenges), self.settings.challenges,
                                      random.SystemRandom())
        self.begun = False  # the script was told a face is in view
        self.deliveries: list[Delivery] = []  # per prompt sent, who it reached
        self.landmarker: FaceLandmarker | None = None
        self.engine: LivenessEngine | None = None
        self.t0 = time.monotonic()
        self.last_hints: tuple[str, ...] | None = None  # None: nothing sent yet
        self.first_face_t: float | None = None
        self.analysed_t: float | None = None  # the last frame given to the engine
        self.identity = IdentityJobs(self._embed)
        self.prejudge = PreJudge(self._judge, self.settings.prejudge_after_s)
        self.decider = StreamDecider(runtime, sections.faces, sections.silent,
                                     sections.compare, sections.policy)
        self.ended_by = ""
        self.frames_received = 0  # decoded frames the peer's track delivered
        # stalls of the video and the link's measurements (service/rtc/stalls.py)
        self.stalls = StallWatch(self.settings.network)
        self.link = link
        self.link_sample: LinkSample | None = None
        self.channel_offered = channel_offered  # the offer has a data channel section

    def now(self) -> float:
        return time.monotonic() - self.t0

    # --- the loop ---------------------------------------------------------------

    async def run(self, intake: LatestFrame, peer_gone: asyncio.Event) -> None:
        start_task_context(self.session.id)  # this task's log lines name the session
        period = 1.0 / self.settings.analysis_fps
        deadline = self.session.expires_at - time.time() + time.monotonic()
        try:
            self.ended_by = await self._loop(intake, peer_gone, period, deadline)
        except asyncio.CancelledError:
            self.ended_by = self.ended_by or "cancelled"
            raise
        finally:
            await intake.close()
            if self.ended_by == "cancelled":
                self.identity.cancel()
                self.prejudge.cancel()
            await self.identity.settle(self.engine, wait=self.ended_by != "cancelled")
            await self.prejudge.settled()  # the decision judges what it did not
            self.runtime.metrics.stream_ended(
                intake.received, self.engine.analysed if self.engine is not None else 0,
                intake.dropped, self.now())
            self.frames_received = intake.received
            if self.link is not None:
                self.link_sample = await self.link.sample()
            if self.ended_by != "cancelled":
                await self._finish()
            self._forget()

    async def _loop(self, intake: LatestFrame, peer_gone: asyncio.Event, period: float,
                    deadline: float) -> str:
        next_at = time.monotonic()
        while True:
            if peer_gone.is_set():
                return "peer disconnected"
            if time.monotonic() >= deadline:
                return "session deadline"
            if self.begun and not self._video_late(intake) and (
                    ended := self._send(self.script.tick(self.now()))):
                return ended
            if (ended := self._done()):
                return ended
            wait = max(0.0, next_at - time.monotonic())
            if wait:
                await asyncio.sleep(wait)
            next_at = max(next_at + period, time.monotonic())
            # wait for a frame at most one period: the script's clock keeps ticking
            frame = await intake.next(timeout=period)
            if frame is None:
                silent_for = time.monotonic() - (intake.last_arrival or self.t0)
                if intake.ended:
                    return "peer disconnected"  # its video track ended: it hung up
                if (ended := self._stalled(intake)):
                    return ended
                if silent_for > self.settings.media_timeout_s:
                    return "no video received"
                continue
            if (ended := self._resumed()):
                return ended
            t = self.now()
            if not self._due(t):
                continue  # the script only waits: a lower rate is enough now
            if self.engine is None:
                # built at the first frame: a peer that never sends video (an abandoned
                # or hostile offer) holds no FaceMesh graph while it times out
                self.landmarker = await asyncio.to_thread(self.runtime.landmarkers.acquire)
                self.engine = LivenessEngine(self.landmarker, self.runtime.embed,
                                             self.sections.engine, defer_identity=True)
            await self.identity.settle(self.engine, wait=False)
            try:
                report = await self.runtime.run(self._analyse, frame, t)
            except RateLimited:
                continue  # the pool is saturated: skip this frame, keep the newest next
            self.analysed_t = t
            if report.sample is not None:
                self.identity.start(report.sample)
            self.prejudge.step(t, self.engine.best)
            if (ended := self._react(report)):
                return ended

    def _embed(self, sample: IdentitySample) -> Coroutine[Any, Any, np.ndarray]:
        """An identity sample's embedding, a pool job admitted even when the pool is
        busy (a decision needs its identity samples)."""
        return self.runtime.run(self.runtime.embed, sample.image, sample.face, required=True)

    def _judge(self, frame: BestFrame) -> Coroutine[Any, Any, object]:
        """A kept best frame judged ahead of the decision, a pool job of its own (the
        busy pool may refuse it)."""
        return self.runtime.run(judge_frame, self.runtime, frame, self.sections.faces,
                                self.sections.silent)

    def _video_late(self, intake: LatestFrame) -> bool:
        """Is the last frame older than a stall? Then the challenge clock stops: no
        prompt, release or timeout is judged on video that did not come (prompts and
        releases keep the time they are really sent)."""
        last = intake.last_arrival
        return bool(last) and time.monotonic() - last >= self.settings.network.stall_after_s

    def _stalled(self, intake: LatestFrame) -> str:
        """No frame this pass: a stall (once the script runs) is told to the client;
        past its bounds the session ends as `network`."""
        if not self.begun:
            return ""
        now = self.now()
        last = intake.last_arrival - self.t0 if intake.last_arrival else None
        if self.stalls.check(now, last):
            self.outbox.send(msg.Connection("unstable"))
        return NETWORK if self.stalls.stalled and self.stalls.exhausted(now) else ""

    def _resumed(self) -> str:
        """A frame came: after a stall, the challenge under way begins again (a bounded
        number of times)."""
        if self.stalls.frame(self.now()) is None:
            return ""
        self.outbox.send(msg.Connection("restored"))
        if (ended := self._send(self.script.resume(self.now()))):
            return ended
        if self.script.restarts > self.settings.network.max_restarts:
            return NETWORK
        return ""

    def _due(self, t: float) -> bool:
        """Is the frame at `t` to be analysed? (fewer while the script waits)"""
        s = self.settings
        return self.script.frame_due(t, self.analysed_t, s.analysis_fps, s.waiting_fps)

    def _done(self) -> str:
        """Why the stream ends now ("" while it goes on)."""
        if self.first_face_t is None:
            return ""
        watched = self.now() - self.first_face_t - self.stalls.frozen_s(self.now())
        if not self.session.challenges:  # no prompts: watch for a fixed time
            return "observation time done" if watched >= self.settings.observation_s \
                else ""
        if self.script.finished and not self.script.passed:
            return "challenge failed"
        if self.script.finished and watched >= self.settings.min_observation_s:
            return "challenges done"
        return ""

    def _analyse(self, av_frame: Any, t: float) -> FrameReport:
        """In a model worker thread: convert and feed the engine (one frame at a time,
        so the landmarker's graph is never used from two threads at once)."""
        assert self.engine is not None
        frame = frame_from_av(av_frame, self.engine.analysed, t, self.sections.work_side)
        return self.engine.feed(frame)

    def _react(self, report: FrameReport) -> str:
        """One analysed frame: progress hints, then the script; why the stream ends
        now ("" while it goes on)."""
        hints = report.hints
        if hints != self.last_hints:
            self.outbox.send(msg.Progress(hints, report.faces))
            self.last_hints = hints
        if report.faces and self.first_face_t is None:
            self.first_face_t = report.t
        if not self.session.challenges:
            return ""
        if not self.begun and report.faces and "several faces" not in hints and (
                self.outbox.deliverable or not self.channel_offered or report.t
                - self.first_face_t >= self.settings.network.channel_wait_s):
            self.script.begin(report.t)  # the first random pause starts
            self.begun = True
        if not self.begun:
            return ""
        return self._send(self.script.observe(report.state, report.events))

    def _send(self, events: list[Event]) -> str:
        """Send the script's events; "challenges not delivered" when a prompt reached
        neither an open data channel nor an events subscriber (then the session ends:
        nobody could have followed it, so nothing after it proves anything)."""
        for event in events:
            delivery = self.outbox.send(msg.from_script(event))
            if isinstance(event, Prompt):
                self.deliveries.append(delivery)
                if not delivery.reached:
                    self.outbox.send(msg.ChallengeFailed(event.action, event.index,
                                                         "not_delivered"))
                    return NOT_DELIVERED
        return ""

    # --- the end ------------------------------------------------------------------

    def _end(self) -> StreamEnd:
        """What the stream left for its decision."""
        return StreamEnd(
            ended_by=self.ended_by, engine=self.engine, script=self.script,
            challenged=bool(self.session.challenges), deliveries=self.deliveries,
            clock=self.now, frames_received=self.frames_received, stalls=self.stalls,
            link=self.link_sample, network_settings=self.settings.network,
            portrait=self.session.portrait, portrait_detail=self.session.portrait_detail)

    async def _finish(self) -> None:
        self.session.advance(SessionState.DECIDING)
        self.outbox.send(msg.Deciding())
        started = time.perf_counter()
        end = self._end()
        try:
            outcome = await self.runtime.run(self.decider.decide, end, required=True)
        except ApiError as exc:
            outcome = StreamOutcome(error=exc, detail={"ended_by": self.ended_by})
        except Exception:
            # a bug in the decision must still end the session with an answer (and be
            # visible in the log), not leave the client waiting until the TTL
            log.exception("session decision failed")
            outcome = StreamOutcome(error=InternalError())
        payload = outcome.envelope()
        self.session.outcome = outcome
        self.session.result = payload
        # published before anyone hears of it: a client or backend told "decided" may
        # read the result from any replica at once
        await self.publish(self.session)
        self.outbox.send(msg.Result(payload))
        decision_s = time.perf_counter() - started
        self.runtime.metrics.decision_seconds.observe(decision_s)
        self.session.advance(SessionState.DECIDED)
        log_decision(outcome, end, decision_s)
        self.on_done(self.session)

    def _forget(self) -> None:
        if self.engine is not None:
            self.engine.forget()
        if self.landmarker is not None:
            self.runtime.landmarkers.release(self.landmarker)
        self.engine = None
        self.landmarker = None
        self.session.forget_biometrics()
