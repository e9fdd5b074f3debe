"""Video liveness on an uploaded clip (typeId 3035 with a video).

decode (PyAV, sampled at the analysis rate) -> LivenessEngine (landmarks, cues) ->
clip checks (4003 no usable face, 4004 two competing faces throughout) -> silent
liveness on the best frame -> fused decision. The streaming path (service.rtc) uses the
same engine and the same `judge_best_frame` and `decide`.
"""

from __future__ import annotations

from service.api.media import decode_video
from service.config import Config
from service.errors import ApiError, NoFace, SeveralFaces
from service.liveness.best_frame import BestFrame
from service.liveness.decision import VideoDecision, decide
from service.liveness.engine import ClipEvidence, LivenessEngine, as_detection
from service.silent_liveness import LivenessJudgement, judge_face
from service.vision.detection import Detection
from service.vision.faces import find_faces
from service.vision.runtime import ModelRuntime


def check_clip(evidence: ClipEvidence, cfg: Config) -> None:
    """Refuse clips that cannot be judged at all (as opposed to judged not live)."""
    if evidence.with_face == 0:
        raise NoFace("no face in the video")
    if evidence.competing >= cfg.video_policy.competing_fraction * evidence.with_face:
        raise SeveralFaces("two faces compete for the whole video; one person at a time")
    if evidence.best is None:  # faces seen, but only ever next to a competing one
        raise SeveralFaces("no frame shows one face on its own")


def frame_face(runtime: ModelRuntime, frame: BestFrame, cfg: Config) -> Detection:
    """A kept frame's face as the image detector sees it (YuNet box and landmarks: what
    the PAD models were calibrated with and what the embedder aligns by); the
    landmark-derived face if YuNet misses it. Looked up once per frame."""
    if frame.face is None:
        with runtime.metrics.timed("detection"):
            search = find_faces(runtime.detector(), runtime.presence(), frame.image,
                                cfg.faces)
        frame.face = search.faces[0] if search.faces else as_detection(frame.landmarks)
    return frame.face


def best_frame_face(runtime: ModelRuntime, evidence: ClipEvidence, cfg: Config) -> Detection:
    assert evidence.best is not None
    return frame_face(runtime, evidence.best, cfg)


def judge_best_frame(runtime: ModelRuntime, evidence: ClipEvidence, cfg: Config
                     ) -> tuple[LivenessJudgement | None, str]:
    """Silent liveness on the best frames: the judgement with the median live
    probability among the kept frames that pass the quality gates; (None, reason) when
    none does."""
    judged: list[LivenessJudgement] = []
    problem = ""
    for frame in evidence.candidates or ([evidence.best] if evidence.best else []):
        try:
            judged.append(judge_face(runtime, frame.image, frame_face(runtime, frame, cfg),
                                     1, cfg))
        except ApiError as exc:  # quality gates: "cannot tell", which is not "live"
            problem = problem or exc.value
    if not judged:
        return None, problem
    judged.sort(key=lambda j: j.live_probability)
    return judged[(len(judged) - 1) // 2], ""


def analyse_video(runtime: ModelRuntime, data: bytes, cfg: Config) -> VideoDecision:
    """Runs in a model worker thread; the landmarker is this clip's own."""
    landmarker = runtime.landmarkers.acquire()
    engine = LivenessEngine(landmarker, runtime.embed, cfg.engine)
    try:
        frames = decode_video(runtime.decoders, data, cfg.media)
        for frame in runtime.metrics.timed_iter("decode", frames):
            engine.feed(frame)
        evidence = engine.evidence()
        check_clip(evidence, cfg)
        pad, problem = judge_best_frame(runtime, evidence, cfg)
        return decide(evidence, pad, problem, cfg.video_policy)
    finally:
        engine.forget()
        runtime.landmarkers.release(landmarker)
