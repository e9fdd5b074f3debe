"""Evidence -> decision: the one place a liveness verdict is made, for uploads (an image
or a clip, typeId 3035) and for streaming sessions alike.

The result is a structured `Decision`: the verdict, its value, the yes/no cue answers,
the reasons it is not live as (code, words) pairs, the detail of what was measured and,
with an ID portrait, the face comparison. Nothing here knows the vendor envelope: it
is built once, at the edge (service.api.envelope), from this. Logs, metrics and the
session's rules read the codes; clients read the words, which are the strings the
service has always answered with.

Default policy of a clip or a stream (spec section 1, configurable through
VideoDecisionSettings): "Living body" only when one face is tracked through most of the
clip, its identity was checked at least twice and no replacement is seen, silent
liveness on the best frame says live, and at least one active cue happened (a blink
or mouth movement; in a streaming session: every challenge met in order within its
deadline, and delivered to someone who could follow it). The yes/no cue fields report
what was observed, whatever the verdict.

Decision value (0-100.0) is the silent-liveness probability of the best frame, scaled
down by each failed condition, and kept on the same side of 50 as the verdict, so the
number and the words never disagree. An image's value is its silent-liveness score
(0-100, whole numbers, the same rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum

from service.judging.compare import CompareSettings, match_score
from service.judging.silent import LivenessJudgement
from service.liveness.engine import ClipEvidence


@dataclass(frozen=True)
class VideoDecisionSettings:
    # fraction of analysed frames in which the face must be tracked
    min_tracked_fraction: float = 0.6
    # blinks that count as "yes" for the clip (mouth movement: MouthSettings.min_events)
    min_blinks: int = 1
    require_active_cue: bool = True
    # An uploaded clip is refused (4004) when a second face of comparable size is present
    # in this fraction of the frames with a face: two people throughout, not a passer-by.
    competing_fraction: float = 0.8
    # Identity samples a live verdict needs: with one, nothing was compared, so a
    # replacement could not have been seen. Samples come every 0.5-2.5 s of near-frontal
    # face (ReplacementSettings), so any clip or session with ~3 s of frontal face has 2.
    min_identity_samples: int = 2


class ReasonCode(StrEnum):
    """Why a decision is not live. The values are the metrics' label values
    (service_session_failure_reasons{reason}): a small fixed set."""

    FACE_NOT_TRACKED = "face_not_tracked"
    REPLACED = "replaced"
    IDENTITY_UNCHECKED = "identity_unchecked"
    CHALLENGES_NOT_MET = "challenges_not_met"
    # a prompt reached neither an open data channel nor an events subscriber
    # (service.rtc.runner): nobody could have followed it
    CHALLENGES_NOT_DELIVERED = "challenges_not_delivered"
    NO_ACTIVE_CUE = "no_active_cue"
    BEST_FRAME_UNJUDGED = "best_frame_unjudged"
    PRESENTATION_ATTACK = "presentation_attack"
    NO_VIDEO = "no_video"
    NO_FACE = "no_face"


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    words: str  # what the client reads in detail.reasons

    @classmethod
    def face_not_tracked(cls, fraction: float) -> Reason:
        return cls(ReasonCode.FACE_NOT_TRACKED, f"face tracked in only {fraction:.0%} of frames")

    @classmethod
    def identity_unchecked(cls, min_samples: int) -> Reason:
        return cls(ReasonCode.IDENTITY_UNCHECKED,
                   f"identity checked fewer than {min_samples} times")

    @classmethod
    def best_frame_unjudged(cls, problem: str) -> Reason:
        return cls(ReasonCode.BEST_FRAME_UNJUDGED,
                   f"silent liveness could not judge the best frame ({problem})")


REPLACED = Reason(ReasonCode.REPLACED, "the face was replaced by another")
CHALLENGES_NOT_MET = Reason(ReasonCode.CHALLENGES_NOT_MET, "challenges not met")
CHALLENGES_NOT_DELIVERED = Reason(ReasonCode.CHALLENGES_NOT_DELIVERED,
                                  "challenges not delivered")
NO_ACTIVE_CUE = Reason(ReasonCode.NO_ACTIVE_CUE, "no blink or mouth movement")
PRESENTATION_ATTACK = Reason(ReasonCode.PRESENTATION_ATTACK,
                             "silent liveness: presentation attack suspected")
NO_VIDEO = Reason(ReasonCode.NO_VIDEO, "no video received")
NO_FACE = Reason(ReasonCode.NO_FACE, "no face seen")


class Challenges(Enum):
    """A streaming session's challenge script, as the decision sees it."""

    MET = "met"
    NOT_MET = "not met"  # failed, or not finished
    NOT_DELIVERED = "not delivered"  # a prompt nobody could see (whatever followed)


@dataclass(frozen=True)
class Cues:
    """The yes/no answers of a clip or a stream: what was observed, whatever the verdict."""

    blinked: bool
    mouth_moved: bool
    replaced: bool


@dataclass(frozen=True)
class Comparison:
    """Face comparison: same person?, the 0-100 score on the same side of 50, and the
    cosine similarity against the threshold it was judged by."""

    same: bool
    score: int
    similarity: float
    threshold: float

    def to_json(self) -> dict[str, object]:
        return {"similarity": round(self.similarity, 4), "threshold": round(self.threshold, 4)}


@dataclass
class Decision:
    live: bool
    value: float  # 0-100, on the same side of 50 as `live`
    # a clip's or a stream's cue answers; None for one image (it has none)
    cues: Cues | None
    reasons: list[Reason]  # empty when live
    detail: dict[str, object] = field(default_factory=dict)  # what was measured
    comparison: Comparison | None = None  # with an ID portrait (a stream's)

    @property
    def codes(self) -> list[ReasonCode]:
        return [r.code for r in self.reasons]

    @property
    def words(self) -> list[str]:
        return [r.words for r in self.reasons]


def compare(cosine: float, settings: CompareSettings) -> Comparison:
    same, score = match_score(cosine, settings)
    return Comparison(same, score, cosine, settings.threshold)


def decide_image(judgement: LivenessJudgement) -> Decision:
    """Silent liveness on one image: its judgement is the verdict."""
    return Decision(judgement.live, float(judgement.score), None, [], judgement.detail())


def decide(evidence: ClipEvidence, pad: LivenessJudgement | None, pad_problem: str,
           policy: VideoDecisionSettings, challenges: Challenges | None = None) -> Decision:
    """`challenges` is None for uploaded clips (any active cue counts) and the
    challenge script's outcome in a streaming session."""
    blinked = evidence.count("blink") >= policy.min_blinks
    mouth_moved = evidence.mouth_moved
    replaced = evidence.count("replacement") > 0
    reasons: list[Reason] = []
    factor = 1.0
    if evidence.tracked_fraction < policy.min_tracked_fraction:
        reasons.append(Reason.face_not_tracked(evidence.tracked_fraction))
        factor *= max(evidence.tracked_fraction, 0.1)
    if replaced:
        reasons.append(REPLACED)
        factor *= 0.2
    samples = evidence.identity.get("samples", 0)
    if not isinstance(samples, int) or samples < policy.min_identity_samples:
        reasons.append(Reason.identity_unchecked(policy.min_identity_samples))
        factor *= 0.5
    if challenges in (Challenges.NOT_MET, Challenges.NOT_DELIVERED):
        # not delivered: the failed condition is that nobody saw the prompts
        reasons.append(CHALLENGES_NOT_DELIVERED if challenges is Challenges.NOT_DELIVERED
                       else CHALLENGES_NOT_MET)
        factor *= 0.4
    elif challenges is None and policy.require_active_cue and not (blinked or mouth_moved):
        reasons.append(NO_ACTIVE_CUE)
        factor *= 0.5
    if pad is None:
        reasons.append(Reason.best_frame_unjudged(pad_problem))
        probability = 0.0
    else:
        probability = pad.live_probability
        if not pad.live:
            reasons.append(PRESENTATION_ATTACK)
    live = not reasons
    value = round(100.0 * probability * factor, 1)
    value = max(50.0, value) if live else min(49.9, value)
    detail: dict[str, object] = {
        "frames_analysed": evidence.analysed,
        "tracked_fraction": round(evidence.tracked_fraction, 3),
        "competing_face_frames": evidence.competing,
        "duration_s": round(evidence.duration_s, 3),
        "events": [e.to_json() for e in evidence.events],
        "identity": evidence.identity,
        "silent_liveness": pad.detail() if pad is not None else {"problem": pad_problem},
    }
    if evidence.best is not None:
        detail["best_frame"] = {"t": round(evidence.best.t, 3),
                                "quality": evidence.best.quality.to_json()}
    return Decision(live, value, Cues(blinked, mouth_moved, replaced), reasons, detail)


def decide_without_face(evidence: ClipEvidence) -> Decision:
    """A stream in which no face was ever seen on its own (or no frame came): not live,
    with nothing to judge."""
    reason = NO_VIDEO if evidence.analysed == 0 else NO_FACE
    return Decision(live=False, value=0.0, cues=Cues(False, False, False), reasons=[reason],
                    detail={"frames_analysed": evidence.analysed, "tracked_fraction": 0.0})

