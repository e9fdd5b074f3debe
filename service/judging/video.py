"""Video liveness on an uploaded clip (typeId 3035 with a video).

decode (PyAV, sampled at the analysis rate) -> LivenessEngine (landmarks, cues) ->
clip checks (4003 no usable face, 4004 two competing faces throughout) -> silent
liveness on the best frames -> the decision (service.judging.decision). The streaming
path (service.rtc) uses the same engine, the same `judge_frame` / `judge_best_frame`
and the same `decide`.
"""

from __future__ import annotations

import hashlib
import random

from service.errors import ApiError, NoFace, SeveralFaces
from service.judging.decision import Decision, VideoDecisionSettings, decide
from service.judging.silent import LivenessJudgement, SilentSettings, judge_face
from service.liveness.best_frame import BestFrame
from service.liveness.engine import ClipEvidence, EngineSettings, LivenessEngine, as_detection
from service.media.uploads import MediaSettings, decode_video
from service.vision.detection import Detection
from service.vision.faces import FaceSearchSettings, refine
from service.vision.runtime import ModelRuntime


def check_clip(evidence: ClipEvidence, policy: VideoDecisionSettings) -> None:
    """Refuse clips that cannot be judged at all (as opposed to judged not live)."""
    if evidence.with_face == 0:
        raise NoFace("no face in the video")
    if evidence.competing >= policy.competing_fraction * evidence.with_face:
        raise SeveralFaces("two faces compete for the whole video; one person at a time")
    if evidence.best is None:  # faces seen, but only ever next to a competing one
        raise SeveralFaces("no frame shows one face on its own")


def frame_face(runtime: ModelRuntime, frame: BestFrame, faces: FaceSearchSettings
               ) -> Detection:
    """A kept frame's face as the image detector sees it (YuNet box and landmarks: what
    the PAD models were calibrated with and what the embedder aligns by); the
    landmark-derived face if YuNet misses it. Looked up once per frame.

    YuNet looks only in a crop around the tracked face (faces.refine): the frame is
    already known to show that one face (best frames are kept only while no other face
    competes), so a search of the whole frame and its confirmation would find the same
    face at three times the cost, and the decision of a stream waits for this."""
    if frame.face is None:
        landmark_face = as_detection(frame.landmarks)
        with runtime.metrics.timed("detection"):
            refined = refine(runtime.detector(), frame.image, landmark_face, faces)
        frame.face = refined.face if refined is not None else landmark_face
    return frame.face


def judge_frame(runtime: ModelRuntime, frame: BestFrame, faces: FaceSearchSettings,
                silent: SilentSettings) -> tuple[LivenessJudgement | None, str]:
    """Silent liveness on one kept frame, made once and kept on the frame: (the
    judgement, "") or (None, why it cannot be judged: a quality gate)."""
    if frame.judged is None:
        try:
            frame.judged = (judge_face(runtime, frame.image,
                                       frame_face(runtime, frame, faces), 1, silent), "")
        except ApiError as exc:  # quality gates: "cannot tell", which is not "live"
            frame.judged = (None, exc.value)
    return frame.judged


def judge_best_frame(runtime: ModelRuntime, evidence: ClipEvidence, faces: FaceSearchSettings,
                     silent: SilentSettings) -> tuple[LivenessJudgement | None, str]:
    """Silent liveness on the best frames: the judgement with the median live
    probability among the kept frames that pass the quality gates; (None, reason) when
    none does. Frames judged ahead (a stream's) are not judged again."""
    judged: list[LivenessJudgement] = []
    problem = ""
    for frame in evidence.candidates or ([evidence.best] if evidence.best else []):
        judgement, why = judge_frame(runtime, frame, faces, silent)
        if judgement is not None:
            judged.append(judgement)
        else:
            problem = problem or why
    if not judged:
        return None, problem
    judged.sort(key=lambda j: j.live_probability)
    return judged[(len(judged) - 1) // 2], ""


def content_rng(data: bytes) -> random.Random:
    """The identity sampling times of an uploaded clip, drawn from its bytes.

    Why: an upload is one piece of evidence, so it gets one answer; with times drawn
    from the OS, the same bytes sent ten times answered `replaced` 1-3 times out of 10
    (issue 19). Nothing is lost against recordings: an uploaded clip is fixed before
    it is sent, so the sampling times it meets were never a secret from it (a live
    stream keeps the OS's random source: there the times are a secret from whatever
    plays into the camera). Re-encoding the clip changes the times; that is a new
    upload, and a cut is caught by the track's discontinuity checks at any times."""
    return random.Random(int.from_bytes(hashlib.sha256(data).digest()[:16], "big"))


def analyse_video(runtime: ModelRuntime, data: bytes, media: MediaSettings,
                  engine_settings: EngineSettings, faces: FaceSearchSettings,
                  silent: SilentSettings, policy: VideoDecisionSettings) -> Decision:
    """Runs in a model worker thread; the landmarker is this clip's own. Every random
    choice is seeded by the clip's bytes (`content_rng`): the same upload, the same
    answer."""
    landmarker = runtime.landmarkers.acquire()
    engine = LivenessEngine(landmarker, runtime.embed, engine_settings, rng=content_rng(data))
    try:
        frames = decode_video(runtime.decoders, data, media)
        for frame in runtime.metrics.timed_iter("decode", frames):
            engine.feed(frame)
        evidence = engine.evidence()
        check_clip(evidence, policy)
        pad, problem = judge_best_frame(runtime, evidence, faces, silent)
        return decide(evidence, pad, problem, policy)
    finally:
        engine.forget()
        runtime.landmarkers.release(landmarker)
