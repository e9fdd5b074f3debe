"""One streaming session's analysis: newest frame -> engine -> prompts -> decision.

The loop samples the newest received frame at the stream analysis rate (latest-frame
wins, see intake.py), runs frame conversion and the liveness engine in the model pool
(never on the event loop), turns cue events into challenge progress, and tells the
client what to do over the `liveness` data channel. It ends when the challenges are
done or failed, the session deadline passes, the peer goes away or sends no video;
then it fuses the evidence, scores the best frame (silent liveness and, with a
portrait, face comparison), publishes the result and drops every biometric.

Time: cue events carry the sampling time on our monotonic clock (seconds since the
session started), the same clock the challenge script uses, so "a cue before its
prompt does not count" compares like with like.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from aiortc import RTCDataChannel

from service.compare import match_score, prepare_face
from service.config import Config
from service.errors import ApiError, InternalError, RateLimited
from service.liveness.challenges import ChallengeScript
from service.liveness.decision import VideoDecision, decide
from service.liveness.engine import ClipEvidence, FrameReport, LivenessEngine
from service.payload import Payload, face_comparison_items, failure, success
from service.rtc.intake import LatestFrame
from service.rtc.session import Session
from service.video.frames import frame_from_av
from service.video_liveness import best_frame_face, judge_best_frame
from service.vision.embedding import cosine
from service.vision.landmarks import FaceLandmarker
from service.vision.runtime import ModelRuntime

log = logging.getLogger("service.rtc")

@dataclass
class Channel:
    """The client's `liveness` data channel, if it opened one; sends are best effort."""

    dc: RTCDataChannel | None = None

    def send(self, message: dict[str, Any]) -> None:
        # Checked and sent in one step of the event loop, so the channel cannot close in
        # between: a message to a closed or never-opened channel is simply not sent.
        if self.dc is not None and self.dc.readyState == "open":
            self.dc.send(json.dumps(message))


class StreamRun:
    def __init__(self, session: Session, runtime: ModelRuntime, cfg: Config,
                 channel: Channel, on_done: Callable[[Session], None]) -> None:
        self.session = session
        self.runtime = runtime
        self.cfg = cfg
        self.channel = channel
        self.on_done = on_done
        self.script = ChallengeScript(list(session.challenges), cfg.sessions.challenge_time_s)
        self.landmarker: FaceLandmarker | None = None
        self.engine: LivenessEngine | None = None
        self.t0 = time.monotonic()
        self.last_hints: tuple[str, ...] | None = None  # None: nothing sent yet
        self.first_face_t: float | None = None
        self.ended_by = ""

    def now(self) -> float:
        return time.monotonic() - self.t0

    # --- the loop ---------------------------------------------------------------

    async def run(self, intake: LatestFrame, peer_gone: asyncio.Event) -> None:
        self.landmarker = await asyncio.to_thread(self.runtime.landmarkers.acquire)
        self.engine = LivenessEngine(self.landmarker, self.runtime.embed, self.cfg.engine)
        period = 1.0 / self.cfg.sessions.analysis_fps
        deadline = self.session.expires_at - time.time() + time.monotonic()
        try:
            self.ended_by = await self._loop(intake, peer_gone, period, deadline)
        except asyncio.CancelledError:
            self.ended_by = self.ended_by or "cancelled"
            raise
        finally:
            await intake.close()
            if not self.ended_by == "cancelled":
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
            if self.script.tick(self.now()):
                challenge = self.script.failed_challenge
                self.channel.send({"type": "challenge_failed",
                                   "action": challenge.action if challenge else None})
                return "challenge deadline"
            observed = (self.first_face_t is not None and self.now() - self.first_face_t
                        >= self.cfg.sessions.min_observation_s)
            if self.script.finished and self.script.started and observed:
                return "challenges done"
            if not self.session.challenges and self.first_face_t is not None and \
                    self.now() - self.first_face_t >= self.cfg.sessions.challenge_time_s:
                return "observation time done"  # no prompts: watch for a fixed time
            wait = max(0.0, next_at - time.monotonic())
            if wait:
                await asyncio.sleep(wait)
            next_at = max(next_at + period, time.monotonic())
            frame = await intake.next(timeout=0.5)
            if frame is None:
                silent_for = time.monotonic() - (intake.last_arrival or self.t0)
                if intake.ended:
                    return "peer disconnected"  # its video track ended: it hung up
                if silent_for > self.cfg.sessions.media_timeout_s:
                    return "no video received"
                continue
            t = self.now()
            try:
                report = await self.runtime.run(self._analyse, frame, t)
            except RateLimited:
                continue  # the pool is saturated: skip this frame, keep the newest next
            self._react(report)

    def _analyse(self, av_frame: Any, t: float) -> FrameReport:
        """In a model worker thread: convert and feed the engine (one frame at a time,
        so the landmarker's graph is never used from two threads at once)."""
        assert self.engine is not None
        frame = frame_from_av(av_frame, self.engine.analysed, t, self.cfg.media.work_side)
        return self.engine.feed(frame)

    def _react(self, report: FrameReport) -> None:
        hints = report.hints
        if hints != self.last_hints:
            self.channel.send({"type": "progress", "hints": list(hints), "faces": report.faces})
            self.last_hints = hints
        if report.faces and self.first_face_t is None:
            self.first_face_t = report.t
        if report.faces and "several faces" not in hints and not self.script.started:
            self._prompt(self.script.start(report.t))
        for event in report.events:
            met, following = self.script.on_cue(event.kind, event.t)
            if met is not None:
                index = self.script.challenges.index(met)
                self.channel.send({"type": "challenge_met", "action": met.action,
                                   "index": index})
                self._prompt(following)

    def _prompt(self, challenge: Any) -> None:
        if challenge is None:
            return
        self.channel.send({
            "type": "challenge", "action": challenge.action,
            "index": self.script.challenges.index(challenge),
            "total": len(self.script.challenges),
            "deadline_ms": int(self.cfg.sessions.challenge_time_s * 1000),
        })

    # --- the decision -------------------------------------------------------------

    async def _finish(self) -> None:
        self.session.state = "deciding"
        self.channel.send({"type": "deciding"})
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
        self.session.state = "decided"
        self.session.decided_at = time.time()
        self.channel.send({"type": "result", "payload": payload})
        self.on_done(self.session)

    def _decide(self) -> Payload:
        """In a model worker thread."""
        assert self.engine is not None
        evidence = self.engine.evidence()
        challenges_met = self.script.passed if self.session.challenges else None
        seconds = max(self.now(), 1e-6)
        detail_extra = {"ended_by": self.ended_by,
                        "challenges": [c.to_json() for c in self.script.challenges],
                        "stream_seconds": round(seconds, 3),
                        "analysed_fps": round(evidence.analysed / seconds, 2)}
        if evidence.with_face == 0 or evidence.best is None:
            decision = _no_face_decision(evidence, self.ended_by)
            items = decision.veritems()
        else:
            pad, problem = judge_best_frame(self.runtime, evidence, self.cfg)
            decision = decide(evidence, pad, problem, self.cfg.video_policy, challenges_met)
            items = decision.veritems()
            if self.session.portrait is not None:
                items += self._compare(evidence, decision)
        decision.detail.update(detail_extra)
        return success(items, decision.detail)

    def _compare(self, evidence: ClipEvidence, decision: VideoDecision
                 ) -> list[dict[str, object]]:
        assert evidence.best is not None and self.session.portrait is not None
        face = best_frame_face(self.runtime, evidence, self.cfg)
        embedding = self.runtime.embedder()(evidence.best.image, face)
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
