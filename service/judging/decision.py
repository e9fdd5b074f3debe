"""Fuse clip evidence into the vendor's video-liveness answer.

Default policy (spec section 1, configurable through VideoDecisionSettings): "Living body" only
when one face is tracked through most of the clip, its identity was checked at least
twice and no replacement is seen, silent
liveness on the best frame says live, and at least one active cue happened (a blink
or mouth movement; in a streaming session: every challenge met in order within its
deadline). The yes/no cue fields report what was observed, whatever the verdict.

Decision value (0-100.0) is the silent-liveness probability of the best frame, scaled
down by each failed condition, and kept on the same side of 50 as the verdict, so the
number and the words never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service.api.envelope import veritem
from service.liveness.engine import ClipEvidence

if TYPE_CHECKING:  # silent_liveness imports the config, which imports this policy
    from service.judging.silent import LivenessJudgement


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


@dataclass
class VideoDecision:
    live: bool
    value: float
    blinked: bool
    mouth_moved: bool
    replaced: bool
    reasons: list[str]
    detail: dict[str, object] = field(default_factory=dict)

    def veritems(self) -> list[dict[str, object]]:
        yes_no = {True: "yes", False: "no"}
        return [
            veritem("Decision value", f"{self.value:.1f}"),
            veritem("Live or not", "Living body" if self.live else "Non-living body"),
            veritem("Whether there is a replacement", yes_no[self.replaced]),
            veritem("Whether there is blinking", yes_no[self.blinked]),
            veritem("Whether there is a mouth", yes_no[self.mouth_moved]),
        ]


def decide(evidence: ClipEvidence, pad: LivenessJudgement | None, pad_problem: str,
           policy: VideoDecisionSettings, challenges_met: bool | None = None) -> VideoDecision:
    """`challenges_met` is None for uploaded clips (any active cue counts) and the
    challenge script's verdict in a streaming session."""
    blinked = evidence.count("blink") >= policy.min_blinks
    mouth_moved = evidence.mouth_moved
    replaced = evidence.count("replacement") > 0
    reasons: list[str] = []
    factor = 1.0
    if evidence.tracked_fraction < policy.min_tracked_fraction:
        reasons.append(f"face tracked in only {evidence.tracked_fraction:.0%} of frames")
        factor *= max(evidence.tracked_fraction, 0.1)
    if replaced:
        reasons.append("the face was replaced by another")
        factor *= 0.2
    samples = evidence.identity.get("samples", 0)
    if not isinstance(samples, int) or samples < policy.min_identity_samples:
        reasons.append(f"identity checked fewer than {policy.min_identity_samples} times")
        factor *= 0.5
    if challenges_met is False:
        reasons.append("challenges not met")
        factor *= 0.4
    elif challenges_met is None and policy.require_active_cue and not (blinked or mouth_moved):
        reasons.append("no blink or mouth movement")
        factor *= 0.5
    if pad is None:
        reasons.append(f"silent liveness could not judge the best frame ({pad_problem})")
        probability = 0.0
    else:
        probability = pad.live_probability
        if not pad.live:
            reasons.append("silent liveness: presentation attack suspected")
    live = not reasons
    value = round(100.0 * probability * factor, 1)
    value = max(50.0, value) if live else min(49.9, value)
    detail: dict[str, object] = {
        "reasons": reasons,
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
    return VideoDecision(live, value, blinked, mouth_moved, replaced, reasons, detail)
