"""One streaming session's analysis: newest frame -> engine -> challenge script -> decision.

The loop samples the newest received frame at the stream analysis rate (latest-frame
wins, see intake.py; at the lower `waiting_fps` while the challenge script only waits
for its clock, ChallengeScript.frame_due), runs frame conversion and the liveness engine
in the model pool (never on the event loop), embeds the identity samples the engine
hands out as separate pool jobs (a frame's analysis never waits for one; their results
are given back to the engine between two frames), judges the kept best frames that have
settled (silent liveness) ahead of the decision the same way, and drives the challenge script
(service.liveness.challenges) two ways: by the clock (`tick`, every pass of the loop,
also while no frame comes, so a prompt or a release goes out on time) and by each
analysed frame's action state and cue events (`observe`). Every script event becomes a
message (service.rtc.messages) sent through the session's outbox (data channel and
events streams); for each prompt the outbox says whether anyone could receive it, and
a prompt nobody could see ends the session as "challenges not delivered" (a recording
pushed without a data channel or a paired screen cannot have followed it).

It ends when the challenges are done or failed, the session deadline passes, the peer
goes away or sends no video; then it fuses the evidence, scores the best frame (silent
liveness and, with a portrait, face comparison), publishes the result and drops every
biometric. The runner knows the outbox only (send a message, learn who it reached),
not the peer connection.

Time: frame states and cue events carry the sampling time on our monotonic clock
(seconds since the session started), the clock `tick` is given too, so "an onset
before its prompt" compares like with like.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from service.api.envelope import Payload, face_comparison_items, failure, success
from service.config import Config
from service.errors import ApiError, InternalError, RateLimited
from service.judging.compare import match_score, prepare_face
from service.judging.decision import VideoDecision, decide
from service.judging.video import frame_face, judge_best_frame, judge_frame
from service.liveness.challenges import ChallengeScript, Event, Prompt
from service.liveness.engine import ClipEvidence, FrameReport, IdentitySample, LivenessEngine
from service.media.frames import frame_from_av
from service.ops.logs import start_task_context
from service.rtc import messages as msg
from service.rtc.intake import LatestFrame
from service.rtc.linkstats import LinkMonitor
from service.rtc.outbox import Delivery
from service.rtc.session import Session, SessionState
from service.rtc.stalls import (
    NETWORK,
    LinkSample,
    StallWatch,
    failed_by_network,
    network_detail,
    network_failure,
)
from service.vision.embedding import cosine
from service.vision.landmarks import FaceLandmarker
from service.vision.runtime import ModelRuntime

log = logging.getLogger("service.rtc")

NOT_DELIVERED = "challenges not delivered"
# The evidence of a stream whose peer never sent a frame (its engine was never built).
NO_FRAMES = ClipEvidence(analysed=0, with_face=0, competing=0, events=[], best=None,
                         identity={}, duration_s=0.0)


class StreamRun:
    def __init__(self, session: Session, runtime: ModelRuntime, cfg: Config,
                 on_done: Callable[[Session], None],
                 publish: Callable[[Session], Awaitable[None]],
                 link: LinkMonitor | None = None, channel_offered: bool = False) -> None:
        self.session = session
        self.runtime = runtime
        self.cfg = cfg
        self.outbox = session.outbox
        self.on_done = on_done
        self.publish = publish  # the decision to every replica (session directory)
        # the prompts' timing must be unpredictable: the system's random source
        self.script = ChallengeScript(list(session.challenges), cfg.sessions.challenges,
                                      random.SystemRandom())
        self.begun = False  # the script was told a face is in view
        self.deliveries: list[Delivery] = []  # per prompt sent, who it reached
        self.landmarker: FaceLandmarker | None = None
        self.engine: LivenessEngine | None = None
        self.t0 = time.monotonic()
        self.last_hints: tuple[str, ...] | None = None  # None: nothing sent yet
        self.first_face_t: float | None = None
        self.analysed_t: float | None = None  # the last frame given to the engine
        # the identity sample being embedded (at most one) and its job
        self.identifying: tuple[IdentitySample, asyncio.Task[np.ndarray]] | None = None
        # the kept best frame being judged ahead of the decision (at most one)
        self.prejudging: asyncio.Task[object] | None = None
        self.prejudge_from = 0.0  # no job ahead before this time (the pool refused one)
        self.ended_by = ""
        self.frames_received = 0  # decoded frames the peer's track delivered
        # stalls of the video and the link's measurements (service/rtc/stalls.py)
        self.stalls = StallWatch(cfg.sessions.network)
        self.link = link
        self.link_sample: LinkSample | None = None
        self.channel_offered = channel_offered  # the offer has a data channel section

    def now(self) -> float:
        return time.monotonic() - self.t0

    # --- the loop ---------------------------------------------------------------

    async def run(self, intake: LatestFrame, peer_gone: asyncio.Event) -> None:
        start_task_context(self.session.id)  # this task's log lines name the session
        period = 1.0 / self.cfg.sessions.analysis_fps
        deadline = self.session.expires_at - time.time() + time.monotonic()
        try:
            self.ended_by = await self._loop(intake, peer_gone, period, deadline)
        except asyncio.CancelledError:
            self.ended_by = self.ended_by or "cancelled"
            raise
        finally:
            await intake.close()
            if self.ended_by == "cancelled" and self.identifying is not None:
                self.identifying[1].cancel()
            if self.ended_by == "cancelled" and self.prejudging is not None:
                self.prejudging.cancel()
            await self._identity_settled(wait=self.ended_by != "cancelled")
            if self.prejudging is not None:  # the decision judges what it did not
                await asyncio.wait([self.prejudging])
                if not self.prejudging.cancelled():
                    self.prejudging.exception()  # retrieved: a refusal is no error here
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
                if silent_for > self.cfg.sessions.media_timeout_s:
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
                                             self.cfg.engine, defer_identity=True)
            await self._identity_settled(wait=False)
            try:
                report = await self.runtime.run(self._analyse, frame, t)
            except RateLimited:
                continue  # the pool is saturated: skip this frame, keep the newest next
            self.analysed_t = t
            if report.sample is not None:
                self._identify(report.sample)
            self._prejudge(t)
            if (ended := self._react(report)):
                return ended

    def _video_late(self, intake: LatestFrame) -> bool:
        """Is the last frame older than a stall? Then the challenge clock stops: no
        prompt, release or timeout is judged on video that did not come (prompts and
        releases keep the time they are really sent)."""
        last = intake.last_arrival
        return bool(last) and time.monotonic() - last >= self.cfg.sessions.network.stall_after_s

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
        if self.script.restarts > self.cfg.sessions.network.max_restarts:
            return NETWORK
        return ""

    def _due(self, t: float) -> bool:
        """Is the frame at `t` to be analysed? (fewer while the script waits)"""
        s = self.cfg.sessions
        return self.script.frame_due(t, self.analysed_t, s.analysis_fps, s.waiting_fps)

    def _identify(self, sample: IdentitySample) -> None:
        """Embed the engine's identity sample as a pool job of its own (admitted even
        when the pool is busy: a decision needs its identity samples)."""
        job = asyncio.create_task(self.runtime.run(self.runtime.embed, sample.image,
                                                   sample.face, required=True),
                                  name="identity")
        self.identifying = (sample, job)

    def _prejudge(self, t: float) -> None:
        """Judge a settled best frame as a pool job of its own (between two frames: the
        engine is idle). Refused by a busy pool, it is simply left to the decision."""
        job = self.prejudging
        if self.engine is None or (job is not None and not job.done()):
            return
        if job is not None and not job.cancelled() and job.exception() is not None:
            if not isinstance(job.exception(), RateLimited):
                log.warning("best frame not judged ahead: %r", job.exception())
            self.prejudge_from = t + 1.0  # the pool is busy: not before a second
        self.prejudging = None
        if t < self.prejudge_from:
            return
        frame = self.engine.best.settled_unjudged(t, self.cfg.sessions.prejudge_after_s)
        if frame is not None:
            self.prejudging = asyncio.create_task(
                self.runtime.run(judge_frame, self.runtime, frame, self.cfg),
                name="prejudge")

    async def _identity_settled(self, wait: bool) -> None:
        """Give a finished identity job's embedding back to the engine (here, between
        two frames: the engine is never used from two threads at once); with `wait`,
        after waiting for the one still running (before the decision)."""
        if self.identifying is None:
            return
        sample, job = self.identifying
        if not job.done():
            if not wait:
                return
            await asyncio.wait([job])
        self.identifying = None
        if self.engine is None:
            return
        if job.cancelled() or job.exception() is not None:
            if not job.cancelled():
                log.warning("identity sample not embedded: %r", job.exception())
            self.engine.sample_lost()
        else:
            self.engine.identified(sample, job.result())

    def _done(self) -> str:
        """Why the stream ends now ("" while it goes on)."""
        if self.first_face_t is None:
            return ""
        watched = self.now() - self.first_face_t - self.stalls.frozen_s(self.now())
        if not self.session.challenges:  # no prompts: watch for a fixed time
            return "observation time done" if watched >= self.cfg.sessions.observation_s \
                else ""
        if self.script.finished and not self.script.passed:
            return "challenge failed"
        if self.script.finished and watched >= self.cfg.sessions.min_observation_s:
            return "challenges done"
        return ""

    def _analyse(self, av_frame: Any, t: float) -> FrameReport:
        """In a model worker thread: convert and feed the engine (one frame at a time,
        so the landmarker's graph is never used from two threads at once)."""
        assert self.engine is not None
        frame = frame_from_av(av_frame, self.engine.analysed, t, self.cfg.media.work_side)
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
                - self.first_face_t >= self.cfg.sessions.network.channel_wait_s):
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

    # --- the decision -------------------------------------------------------------

    async def _finish(self) -> None:
        self.session.advance(SessionState.DECIDING)
        self.outbox.send(msg.Deciding())
        started = time.perf_counter()
        try:
            payload = await self.runtime.run(self._decide, required=True)
        except ApiError as exc:
            payload = failure(exc.status, exc.value, {"ended_by": self.ended_by})
        except Exception:
            # a bug in the decision must still end the session with an answer (and be
            # visible in the log), not leave the client waiting until the TTL
            log.exception("session decision failed")
            payload = failure(InternalError.status, InternalError.message)
        self.session.result = payload
        # published before anyone hears of it: a client or backend told "decided" may
        # read the result from any replica at once
        await self.publish(self.session)
        self.outbox.send(msg.Result(payload))
        decision_s = time.perf_counter() - started
        self.runtime.metrics.decision_seconds.observe(decision_s)
        self.session.advance(SessionState.DECIDED)
        _log_decision(payload, decision_s)
        self.on_done(self.session)

    def _network_failure(self) -> Payload | None:
        """The `network` answer when the network ended the session (not when a
        challenge had failed before: that verdict stands)."""
        failed = self.script.finished and not self.script.passed
        if failed or not failed_by_network(self.ended_by, self.frames_received,
                                           self.link_sample, self.cfg.sessions.network):
            return None
        return network_failure({
            "ended_by": self.ended_by, "challenges": self.script.to_json(),
            "stream_seconds": round(self.now(), 3),
            NETWORK: network_detail(self.stalls, self.now(), self.link_sample,
                                    self.script.restarts)})

    def _decide(self) -> Payload:
        """In a model worker thread."""
        if (network := self._network_failure()) is not None:
            return network
        best_embedding = self._best_frame_embedding()
        evidence = self.engine.evidence() if self.engine is not None else NO_FRAMES
        judged_ahead = sum(f.judged is not None for f in evidence.candidates)
        delivered = all(d.reached for d in self.deliveries)
        challenges_met = (self.script.passed and delivered) if self.session.challenges \
            else None
        seconds = max(self.now(), 1e-6)
        detail_extra = {"ended_by": self.ended_by,
                        "challenges": self.script.to_json(),
                        "challenge_delivery": [d.to_json() for d in self.deliveries],
                        "stream_seconds": round(seconds, 3),
                        "analysed_fps": round(evidence.analysed / seconds, 2),
                        "received_fps": round(self.frames_received / seconds, 2),
                        "best_frames_judged_ahead": judged_ahead,
                        NETWORK: network_detail(self.stalls, self.now(), self.link_sample,
                                                self.script.restarts)}
        if evidence.with_face == 0 or evidence.best is None:
            decision = _no_face_decision(evidence, self.ended_by)
            items = decision.veritems()
        else:
            pad, problem = judge_best_frame(self.runtime, evidence, self.cfg)
            decision = decide(evidence, pad, problem, self.cfg.video_policy, challenges_met)
            if not delivered:  # the failed condition is that nobody saw the prompts
                decision.reasons[decision.reasons.index("challenges not met")] = NOT_DELIVERED
            items = decision.veritems()
            if best_embedding is not None:  # there is a portrait to compare with
                items += self._compare(decision, best_embedding)
        decision.detail.update(detail_extra)
        return success(items, decision.detail)

    def _best_frame_embedding(self) -> np.ndarray | None:
        """With an ID portrait, the best frame's face is what is compared with it: embed
        it once, and first check that it shows the person the session followed (the
        identity anchor), so a face swapped in just long enough to become the best
        frame is a replacement even when no random identity sample fell on it."""
        if self.engine is None or self.session.portrait is None:
            return None
        best = self.engine.best.best
        if best is None:
            return None
        face = frame_face(self.runtime, best, self.cfg)
        with self.runtime.metrics.timed("comparison"):
            embedding = self.runtime.embedder()(best.image, face)
        self.engine.best_frame_identity(embedding)
        return embedding

    def _compare(self, decision: VideoDecision, embedding: np.ndarray
                 ) -> list[dict[str, object]]:
        assert self.session.portrait is not None
        similarity = cosine(embedding, self.session.portrait)
        same, score = match_score(similarity, self.cfg)
        decision.detail["face_comparison"] = {
            "similarity": round(similarity, 4),
            "threshold": round(self.cfg.compare.threshold, 4),
            "portrait": self.session.portrait_detail,
        }
        return face_comparison_items(same, score)

    def _forget(self) -> None:
        if self.engine is not None:
            self.engine.forget()
        if self.landmarker is not None:
            self.runtime.landmarkers.release(self.landmarker)
        self.engine = None
        self.landmarker = None
        self.session.forget_biometrics()


def _log_decision(payload: Payload, decision_s: float) -> None:
    """The session's decision line: verdict, reasons and timings; no scores of the face
    itself, no images, no embeddings."""
    status = payload["messageString"]["status"]
    detail = payload.get("detail", {})
    veritems = (payload["infoList"] or [{}])[0].get("veritem", [])
    items = {i["desc"]: i["content"] for i in veritems}
    verdict = items.get("Live or not", payload["messageString"]["value"])
    reasons = list(detail.get("reasons", []))
    fields = {"status": status, "verdict": verdict, "reasons": reasons,
              "ended_by": detail.get("ended_by", ""),
              "decision_ms": round(decision_s * 1000, 1),
              "stream_seconds": detail.get("stream_seconds"),
              "analysed_fps": detail.get("analysed_fps"),
              "frames_analysed": detail.get("frames_analysed"),
              "challenges": [{"action": c.get("action"), "failed": c.get("failed")}
                             for c in detail.get("challenges", [])]}
    same = [i["desc"].partition(":")[2] for i in veritems
            if i["desc"].startswith("Decision result:")]
    if same:  # the portrait comparison's yes/no
        fields["same_person"] = same[0]
    log.info("session decided: %s (%s) in %.0f ms, ended by %s", verdict,
             "; ".join(reasons) or "every condition met", decision_s * 1000,
             fields["ended_by"] or "-", extra={"fields": fields})


def _no_face_decision(evidence: ClipEvidence, ended_by: str) -> VideoDecision:
    reason = "no video received" if evidence.analysed == 0 else "no face seen"
    return VideoDecision(
        live=False, value=0.0, blinked=False, mouth_moved=False, replaced=False,
        reasons=[reason],
        detail={"reasons": [reason], "frames_analysed": evidence.analysed,
                "tracked_fraction": 0.0, "ended_by": ended_by},
    )


def portrait_embedding(runtime: ModelRuntime, data: bytes, cfg: Config
                       ) -> tuple[np.ndarray, dict[str, object]]:
    """The ID portrait's main face embedding (the image itself is not kept)."""
    prepared = prepare_face(runtime, data, cfg, "the portrait")
    return prepared.embedding, prepared.detail()
