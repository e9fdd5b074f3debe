"""Face replacement: did another person's face take the place of the first one?

Identity is sampled as a face embedding at intervals (and at once after a jump of the
face box, the signature of a cut) and compared with the session's anchor: the median of
the first few stable samples. A replacement needs `confirm` consecutive samples that
look like someone else, so one bad frame (motion blur, a hand over the face) does not
count; a face that leaves and a different one that comes back is caught the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ReplacementParams:
    # Seconds between identity samples while the face stays put (an SFace embedding costs
    # ~20-27 ms here); a jump or a lost face samples at once, a doubtful sample is
    # re-checked on the next frame. 2 s caught every two-person splice of
    # bench/video_liveness.py (cuts at 1.5, 2.5, 3.5 s and a push from the side) at half
    # the cost of sampling every second.
    interval_s: float = 2.0
    # samples forming the anchor identity
    anchor_samples: int = 3
    # cosine to the anchor below which a sample looks like another person. Measured by
    # bench/video_liveness.py on splices of the ZJU clips: the lowest cosine within a
    # clip of one person (also across glasses / lighting conditions) is 0.61-0.88; two
    # different people cut together reach -0.16 to 0.42. 0.5 sits in that gap.
    other_cosine: float = 0.5
    # consecutive "other" samples that make a replacement
    confirm: int = 2
    # box centre moving by more than this many face widths between two analysed frames
    # is a jump (a cut or a swap): sample the identity at once
    jump_widths: float = 0.6


@dataclass(frozen=True)
class ReplacementEvent:
    t: float
    cosine: float


@dataclass
class IdentityTrack:
    params: ReplacementParams = field(default_factory=ReplacementParams)
    _anchor_parts: list[np.ndarray] = field(default_factory=list)
    anchor: np.ndarray | None = None
    _last_sample_t: float = -1e9
    _last_box: tuple[float, float, float, float] | None = None
    _others: int = 0
    _urgent: bool = False
    cosines: list[tuple[float, float]] = field(default_factory=list)  # (t, cosine)
    event: ReplacementEvent | None = None

    def wants_sample(self, t: float, box: tuple[float, float, float, float]) -> bool:
        """Should the caller embed the face in this frame? (cheap; call every frame)"""
        if self._last_box is not None:
            (x0, y0, w0, h0), (x1, y1, w1, h1) = self._last_box, box
            shift = np.hypot((x1 + w1 / 2) - (x0 + w0 / 2), (y1 + h1 / 2) - (y0 + h0 / 2))
            if shift > self.params.jump_widths * max(w0, w1, 1.0):
                self._urgent = True
        self._last_box = box
        return self._urgent or t - self._last_sample_t >= self.params.interval_s

    def lost(self) -> None:
        """The face left the picture: whoever comes back is checked at once."""
        self._last_box = None
        self._urgent = True

    def add(self, t: float, embedding: np.ndarray) -> ReplacementEvent | None:
        self._last_sample_t = t
        self._urgent = False
        if self.anchor is not None:
            cos = float(np.dot(self.anchor, embedding))
            self.cosines.append((t, cos))
            self._others = self._others + 1 if cos < self.params.other_cosine else 0
            if self._others >= self.params.confirm and self.event is None:
                self.event = ReplacementEvent(t, cos)
                return self.event
            if self._others:
                self._urgent = True  # confirm or clear the doubt on the next frame
                return None  # never let a possible other person into the anchor
        if len(self._anchor_parts) < self.params.anchor_samples:
            self._anchor_parts.append(embedding)
            mean = np.median(np.stack(self._anchor_parts), axis=0)
            self.anchor = mean / max(float(np.linalg.norm(mean)), 1e-9)
        return None

    def forget(self) -> None:
        """Drop the identity (biometric) once the decision is made."""
        self.anchor = None
        self._anchor_parts.clear()

    @property
    def min_cosine(self) -> float | None:
        return min((c for _, c in self.cosines), default=None)
