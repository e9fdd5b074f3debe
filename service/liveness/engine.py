"""The video liveness engine: frames in, cue events and clip evidence out.

Pure and synchronous, fed one frame at a time, so the uploaded-video path and the
WebRTC path run exactly the same code: frames -> face track -> cues -> evidence. The
caller owns the clock (frame times), the threads, and what to do with the evidence.

Per analysed frame: FaceMesh landmarks (478 points); the main face is the one that
continues the track (closest to the last box), else the largest; then the eye and mouth
aspect ratios feed the blink and mouth detectors, the nose yaw feeds the turn detector, an embedding at random times (and at once
on a break in the face track; near-frontal frames only) feeds the identity track, and
the frame is offered to the best-frame keeper. Every analysed frame also gets an
ActionState (holds.py: eyes closed, mouth wide open, head turned) for the challenge script.

The embedding (~25 ms, some 40x a frame's cues) runs inside `feed` for an uploaded clip;
a stream's engine is built with `defer_identity` and hands the sample out in its
FrameReport instead, for the runner to embed as a pool job of its own (`identified`
takes the result), so a frame's analysis never waits for it and the next frames are
analysed beside it, on the other core.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from service.liveness.best_frame import BestFrame, BestFrameKeeper, FrameQuality, face_crop_stats
from service.liveness.blink import BlinkDetector, BlinkSettings
from service.liveness.geometry import eye_centres, eye_openness, face_box, mouth_aspect_ratio
from service.liveness.holds import ActionState, HoldSettings, HoldTracker, no_face
from service.liveness.mouth import MouthDetector, MouthSettings
from service.liveness.replacement import Conditions, IdentityTrack, ReplacementSettings, face_look
from service.liveness.turns import HeadTurnSettings, TurnDetector, nose_pitch, nose_yaw
from service.media.frames import Frame
from service.vision.detection import Detection, iou


class Landmarker(Protocol):
    def detect(self, image: np.ndarray) -> list[np.ndarray]: ...

    def face_boxes(self, image: np.ndarray) -> list[tuple[float, float, float, float]]: ...


Embed = Callable[[np.ndarray, Detection], np.ndarray]


@dataclass(frozen=True)
class EngineSettings:
    blink: BlinkSettings = field(default_factory=BlinkSettings)
    mouth: MouthSettings = field(default_factory=MouthSettings)
    turn: HeadTurnSettings = field(default_factory=HeadTurnSettings)
    replacement: ReplacementSettings = field(default_factory=ReplacementSettings)
    holds: HoldSettings = field(default_factory=HoldSettings)
    # a second face at least this fraction of the main face's area competes with it;
    # the whole frame is searched for other faces (BlazeFace) this often, in seconds:
    # once a second costs ~0.3 ms per analysed frame (asking FaceMesh for two faces on
    # every frame made it 7.3 ms instead of 5.2)
    competing_face_ratio: float = 0.5
    competing_check_s: float = 1.0
    # Beyond this head yaw (nose offset from the eyes' midpoint, in eye distances; 0.35
    # is ~20 degrees, 0.5 ~30) the eye and lip contours are foreshortened and their
    # ratios mean little, so the blink and mouth cues skip the frame. Not calibrated on
    # data: every clip in shared/data stays within ~10 degrees, so the gate never fires
    # there; bench/blink_eval.py applies this same gate.
    cue_max_yaw: float = 0.5
    # progress hints (working resolution 640 px): a face narrower than this is "too far"
    # (the FaceMesh box's width, pixels of the analysed frame); darker than this mean
    # grey level of that box is "too dark"; brighter, "too bright". Hints only: what
    # may be judged is the quality gate's (service/vision/quality.py QualitySettings)
    hint_min_face_width_px: float = 90.0
    hint_min_brightness: float = 50.0
    hint_max_brightness: float = 215.0
    # face box centre moving more than this many face widths per second: "hold still"
    max_motion: float = 1.5


@dataclass(frozen=True)
class CueEvent:
    kind: str  # blink | mouth | turn_left | turn_right | replacement
    t: float
    detail: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "t": round(self.t, 3),
                **{k: round(v, 3) for k, v in self.detail.items()}}


@dataclass(frozen=True)
class IdentitySample:
    """A frame's face to embed for the identity track (deferred engines only)."""

    t: float
    image: np.ndarray
    face: Detection


@dataclass(frozen=True)
class FrameReport:
    t: float
    faces: int
    hints: tuple[str, ...]
    events: tuple[CueEvent, ...]
    state: ActionState  # what the challenge script reads (face=False without a face)
    # a deferred engine's identity sample taken from this frame: embed it, then
    # `LivenessEngine.identified` (or `sample_lost`)
    sample: IdentitySample | None = None


@dataclass
class ClipEvidence:
    analysed: int
    with_face: int
    competing: int  # frames where a second face competed with the main one
    events: list[CueEvent]
    best: BestFrame | None
    identity: dict[str, object]
    duration_s: float
    candidates: list[BestFrame] = field(default_factory=list)  # best first
    # enough mouth excursions to call it movement (MouthSettings.min_events)
    mouth_moved: bool = False

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.events)

    @property
    def tracked_fraction(self) -> float:
        return self.with_face / self.analysed if self.analysed else 0.0


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """YuNet's landmark order from FaceMesh: eyes, nose tip, mouth corners (image
    left one first), which is what the SFace aligner expects."""
    eyes = eye_centres(landmarks)
    mouth = sorted([landmarks[61, :2], landmarks[291, :2]], key=lambda p: p[0])
    return np.array([eyes[0], eyes[1], landmarks[1, :2], mouth[0], mouth[1]], np.float32)


def as_detection(landmarks: np.ndarray) -> Detection:
    return Detection(face_box(landmarks), five_points(landmarks), 1.0)


class LivenessEngine:
    def __init__(self, landmarker: Landmarker, embed: Embed,
                 params: EngineSettings = EngineSettings(),
                 rng: random.Random | None = None, defer_identity: bool = False) -> None:
        """`rng` draws the identity sampling times (seeded in tests; by default from
        the OS, so a recording cannot know when the identity will be checked).
        `defer_identity`: identity samples are handed out in the FrameReport, not
        embedded inside `feed` (one at a time: none is taken while one is out)."""
        self.params = params
        self._defer_identity = defer_identity
        self._sample_out: IdentitySample | None = None
        self._landmarker = landmarker
        self._embed = embed
        self.blink = BlinkDetector(params.blink)
        self.mouth = MouthDetector(params.mouth)
        self.turn = TurnDetector(params.turn)
        self.holds = HoldTracker(params.holds)
        self.identity = IdentityTrack(params.replacement, rng or random.Random())
        self.best = BestFrameKeeper()
        self.events: list[CueEvent] = []
        self.analysed = 0
        self.with_face = 0
        self.competing = 0
        self._last: tuple[float, tuple[float, float, float, float]] | None = None
        self._first_t: float | None = None
        self._competing_checked_at = -1e9
        self._competing_now = False
        self._last_t = 0.0

    def _main_face(self, faces: list[np.ndarray]) -> np.ndarray:
        """The face that continues the track, else the largest."""
        boxes = [face_box(f) for f in faces]
        if self._last is not None:
            overlaps = [iou(self._last[1], b) for b in boxes]
            if max(overlaps) >= 0.2:
                return faces[int(np.argmax(overlaps))]
        return faces[int(np.argmax([b[2] * b[3] for b in boxes]))]

    def _competing(self, t: float, image: np.ndarray,
                   box: tuple[float, float, float, float]) -> bool:
        """Is another face of comparable size in the frame? (checked every so often)"""
        if t - self._competing_checked_at < self.params.competing_check_s:
            return self._competing_now
        self._competing_checked_at = t
        area = box[2] * box[3]
        others = [b for b in self._landmarker.face_boxes(image) if iou(b, box) < 0.2]
        self._competing_now = any(
            b[2] * b[3] >= self.params.competing_face_ratio * area for b in others)
        return self._competing_now

    def feed(self, frame: Frame) -> FrameReport:
        t = frame.t
        if self._first_t is None:
            self._first_t = t
        self._last_t = t
        self.analysed += 1
        faces = self._landmarker.detect(frame.image)
        if not faces:
            self.identity.lost()
            self._last = None
            return FrameReport(t, 0, ("no face",), (), no_face(t))
        lm = self._main_face(faces)
        box = face_box(lm)
        competing = self._competing(t, frame.image, box)
        self.with_face += 1
        self.competing += competing
        hints: list[str] = ["several faces"] if competing else []
        events: list[CueEvent] = []

        ear_l, ear_r = eye_openness(lm, "left"), eye_openness(lm, "right")
        yaw = nose_yaw(lm)
        frontal = abs(yaw) < self.params.cue_max_yaw
        blink = self.blink.update(t, ear_l, ear_r, frontal)
        if blink is not None:
            events.append(CueEvent("blink", blink.end_t, {
                "start": blink.start_t, "depth": blink.depth}))
        mouth = self.mouth.update(t, mouth_aspect_ratio(lm), frontal)
        if mouth is not None:
            events.append(CueEvent("mouth", mouth.end_t, {
                "start": mouth.start_t, "amplitude": mouth.amplitude}))
        turn = self.turn.update(t, yaw)
        state = self.holds.update(t, lm)
        if turn is not None:
            events.append(CueEvent(turn.action, turn.t, {"yaw": turn.yaw}))

        detection = as_detection(lm)
        baseline = self.blink.baseline
        eyes_open = (ear_l + ear_r) / 2 / baseline if baseline else 0.5
        sharpness, brightness = face_crop_stats(frame.image, box)
        conditions = Conditions(yaw, nose_pitch(lm), sharpness, brightness)
        sample = None
        if self.identity.wants_sample(t, box, yaw, face_look(frame.image, box), conditions) \
                and self._sample_out is None:
            self.identity.taken(t)
            sample = IdentitySample(t, frame.image, detection)
            if self._defer_identity:
                self._sample_out = sample
            else:
                events += self._compared(sample, self._embed(frame.image, detection))
                sample = None

        quality = FrameQuality(sharpness, brightness, yaw, eyes_open, min(box[2], box[3]))
        if not competing:
            self.best.offer(t, frame.image, lm, quality)

        p = self.params
        if box[2] < p.hint_min_face_width_px:
            hints.append("too far")
        if brightness < p.hint_min_brightness:
            hints.append("too dark")
        elif brightness > p.hint_max_brightness:
            hints.append("too bright")
        if self._last is not None and t > self._last[0]:
            (x0, y0, w0, _), (x1, y1, _, _) = self._last[1], box
            speed = np.hypot(x1 - x0, y1 - y0) / max(w0, 1.0) / (t - self._last[0])
            if speed > p.max_motion:
                hints.append("hold still")
        self._last = (t, box)
        self.events.extend(events)
        return FrameReport(t, len(faces), tuple(hints), tuple(events), state, sample)

    def _compared(self, sample: IdentitySample, embedding: np.ndarray) -> list[CueEvent]:
        replaced = self.identity.result(sample.t, embedding)
        if replaced is None:
            return []
        return [CueEvent("replacement", replaced.t, {"cosine": replaced.cosine})]

    def identified(self, sample: IdentitySample, embedding: np.ndarray) -> tuple[CueEvent, ...]:
        """The embedding of a sample handed out by `feed` (call it between two feeds,
        never beside one): compared now; a replacement event it confirms."""
        self._sample_out = None
        events = self._compared(sample, embedding)
        self.events.extend(events)
        return tuple(events)

    def best_frame_identity(self, embedding: np.ndarray) -> None:
        """At the decision, the embedding of the best frame's face (a stream with an ID
        portrait embeds it for the comparison anyway): a best frame that is not the
        tracked person is a replacement, whether or not a sample fell on it."""
        best = self.best.best
        if best is None:
            return
        replaced = self.identity.best_frame(best.t, embedding)
        if replaced is not None:
            self.events.append(CueEvent("replacement", replaced.t,
                                        {"cosine": replaced.cosine, "best_frame": True}))

    def sample_lost(self) -> None:
        """The sample handed out could not be embedded: another is taken at once."""
        self._sample_out = None
        self.identity.retry()

    def evidence(self) -> ClipEvidence:
        return ClipEvidence(
            analysed=self.analysed, with_face=self.with_face, competing=self.competing,
            events=list(self.events), best=self.best.best, candidates=list(self.best.frames),
            identity={"replaced": self.identity.event is not None,
                      "samples": self.identity.samples,
                      "deferred_while_turned": self.identity.deferred,
                      "min_cosine": None if self.identity.min_cosine is None
                      else round(self.identity.min_cosine, 3),
                      "best_frame_cosine": None if self.identity.best_frame_cosine is None
                      else round(self.identity.best_frame_cosine, 3)},
            duration_s=(self._last_t - (self._first_t or 0.0)),
            mouth_moved=self.mouth.moved,
        )

    def forget(self) -> None:
        """Drop everything biometric (best frame, identity anchor) once decided."""
        self.best.clear()
        self.identity.forget()
        self._sample_out = None
