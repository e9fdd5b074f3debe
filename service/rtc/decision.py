"""A stream's decision: what the stream left -> a structured outcome -> its answer.

When the stream ends (challenges done or failed, the session deadline, the peer gone or
no video) the runner gathers what it left (`StreamEnd`) and this decides, in a model
worker thread: the `network` answer when the network ended the session
(service/rtc/stalls.py; a challenge that had failed before stands), else the liveness
decision of service.judging.decision on the engine's evidence, with the kept best
frames judged (those judged ahead are not judged again, service/rtc/prejudge.py) and,
with an ID portrait, the best frame's face compared with it. The challenge script's
verdict is `Challenges.NOT_DELIVERED` when a prompt reached nobody: a recording pushed
without a data channel or a paired screen cannot have followed it.

The outcome is structured (`StreamOutcome`: the decision, or the error answered
instead); the vendor envelope is built from it once (service.api.envelope), and the
log line and the metrics read the outcome, never the envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.api.envelope import SUCCESS, Payload, decision_fields, failure, liveness_answer
from service.errors import ApiError
from service.judging.compare import CompareSettings
from service.judging.decision import (
    Challenges,
    Decision,
    VideoDecisionSettings,
    compare,
    decide,
    decide_without_face,
)
from service.judging.silent import SilentSettings
from service.judging.video import frame_face, judge_best_frame
from service.liveness.challenges import ChallengeScript
from service.liveness.engine import ClipEvidence, LivenessEngine
from service.rtc.outbox import Delivery
from service.rtc.prejudge import judged_ahead
from service.rtc.stalls import (
    NETWORK,
    LinkSample,
    NetworkSettings,
    StallWatch,
    failed_by_network,
    network_detail,
    network_error,
)
from service.vision.embedding import cosine
from service.vision.faces import FaceSearchSettings
from service.vision.runtime import ModelRuntime

log = logging.getLogger("service.rtc")

# The evidence of a stream whose peer never sent a frame (its engine was never built).
NO_FRAMES = ClipEvidence(analysed=0, with_face=0, competing=0, events=[], best=None,
                         identity={}, duration_s=0.0)


@dataclass
class StreamEnd:
    """What a stream left for its decision, gathered by the runner when it ended."""

    ended_by: str
    engine: LivenessEngine | None  # None: no frame ever came
    script: ChallengeScript
    challenged: bool  # the session has challenges (else: watched for a fixed time)
    deliveries: list[Delivery]  # per prompt sent, who it reached
    clock: Callable[[], float]  # the stream's: seconds since it started
    frames_received: int
    stalls: StallWatch  # the video's stalls
    link: LinkSample | None  # the link's last measurements
    network_settings: NetworkSettings
    portrait: np.ndarray | None = None
    portrait_detail: dict[str, Any] | None = None

    def network(self) -> dict[str, Any]:
        """The stalls' and the link's measurements, up to now."""
        return network_detail(self.stalls, self.clock(), self.link, self.script.restarts)

    def network_failed(self) -> bool:
        """Did the network end the session? Not when a challenge had failed before:
        that verdict stands (service/rtc/stalls.py)."""
        failed = self.script.finished and not self.script.passed
        return not failed and failed_by_network(self.ended_by, self.frames_received,
                                                self.link, self.network_settings)


@dataclass
class StreamOutcome:
    """A stream's answer, structured: its decision, or the error answered instead
    (with that answer's detail)."""

    decision: Decision | None = None
    error: ApiError | None = None
    detail: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return SUCCESS if self.error is None else self.error.status

    def envelope(self) -> Payload:
        if self.decision is not None:
            return liveness_answer(self.decision)
        assert self.error is not None
        return failure(self.error.status, self.error.value, self.detail)

    def reason_codes(self) -> list[str]:
        return [str(c) for c in self.decision.codes] if self.decision is not None else []

    @property
    def found(self) -> dict[str, Any]:
        """The decision's detail, or the error answer's."""
        return self.decision.detail if self.decision is not None else (self.detail or {})


class StreamDecider:
    def __init__(self, runtime: ModelRuntime, faces: FaceSearchSettings,
                 silent: SilentSettings, compare: CompareSettings,
                 policy: VideoDecisionSettings) -> None:
        self.runtime = runtime
        self.faces = faces
        self.silent = silent
        self.compare = compare
        self.policy = policy

    def decide(self, end: StreamEnd) -> StreamOutcome:
        """In a model worker thread."""
        if end.network_failed():
            error, detail = network_error({
                "ended_by": end.ended_by, "challenges": end.script.to_json(),
                "stream_seconds": round(end.clock(), 3), NETWORK: end.network()})
            return StreamOutcome(error=error, detail=detail)
        best_embedding = self._best_frame_embedding(end)
        evidence = end.engine.evidence() if end.engine is not None else NO_FRAMES
        ahead = judged_ahead(evidence.candidates)
        seconds = max(end.clock(), 1e-6)
        network = end.network()  # measured at the end of the stream, not of the judging
        if evidence.with_face == 0 or evidence.best is None:
            decision = decide_without_face(evidence)
        else:
            pad, problem = judge_best_frame(self.runtime, evidence, self.faces, self.silent)
            decision = decide(evidence, pad, problem, self.policy, _challenges(end))
            if best_embedding is not None:  # there is a portrait to compare with
                assert end.portrait is not None
                decision.comparison = compare(cosine(best_embedding, end.portrait),
                                              self.compare)
                decision.detail["face_comparison"] = {**decision.comparison.to_json(),
                                                      "portrait": end.portrait_detail}
        decision.detail.update({
            "ended_by": end.ended_by,
            "challenges": end.script.to_json(),
            "challenge_delivery": [d.to_json() for d in end.deliveries],
            "stream_seconds": round(seconds, 3),
            "analysed_fps": round(evidence.analysed / seconds, 2),
            "received_fps": round(end.frames_received / seconds, 2),
            "best_frames_judged_ahead": ahead,
            NETWORK: network})
        return StreamOutcome(decision)

    def _best_frame_embedding(self, end: StreamEnd) -> np.ndarray | None:
        """With an ID portrait, the best frame's face is what is compared with it: embed
        it once, and first check that it shows the person the session followed (the
        identity anchor), so a face swapped in just long enough to become the best
        frame is a replacement even when no random identity sample fell on it."""
        if end.engine is None or end.portrait is None:
            return None
        best = end.engine.best.best
        if best is None:
            return None
        face = frame_face(self.runtime, best, self.faces)
        with self.runtime.metrics.timed("comparison"):
            embedding = self.runtime.embedder()(best.image, face)
        end.engine.best_frame_identity(embedding)
        return embedding


def _challenges(end: StreamEnd) -> Challenges | None:
    """The challenge script as the decision sees it (None: a session without prompts)."""
    if not end.challenged:
        return None
    if not all(d.reached for d in end.deliveries):
        return Challenges.NOT_DELIVERED
    return Challenges.MET if end.script.passed else Challenges.NOT_MET


def log_decision(outcome: StreamOutcome, end: StreamEnd, decision_s: float) -> None:
    """The session's decision line: verdict, reasons and timings; no scores of the face
    itself, no images, no embeddings."""
    decision, found = outcome.decision, outcome.found
    if decision is not None:
        said = decision_fields(decision)
    else:
        assert outcome.error is not None
        said = {"verdict": outcome.error.value, "reasons": list(found.get("reasons", [])),
                "reason_codes": []}
    fields: dict[str, Any] = {
        "status": outcome.status, **said,
        "ended_by": end.ended_by, "decision_ms": round(decision_s * 1000, 1),
        "stream_seconds": found.get("stream_seconds"),
        "analysed_fps": found.get("analysed_fps"),
        "frames_analysed": found.get("frames_analysed"),
        "challenges": [{"action": c.get("action"), "failed": c.get("failed")}
                       for c in end.script.to_json()]}
    log.info("session decided: %s (%s) in %.0f ms, ended by %s", said["verdict"],
             "; ".join(said["reasons"]) or "every condition met", decision_s * 1000,
             end.ended_by or "-", extra={"fields": fields})
