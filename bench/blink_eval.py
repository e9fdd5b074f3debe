"""Blink and mouth cues on shared/data: event precision/recall against the labels.

For every `blink_clips` entry: decode at the analysis rate, track landmarks, feed the
eye aspect ratios to BlinkDetector, and match detected blinks to labelled ones (frame
intervals in the clip's own numbering, time * fps; a detection and a label match when
their intervals overlap, one-to-one). The baseline is a plain fixed-threshold detector
(mean EAR < 0.2 on at least one frame), run on the same frames and on every frame.
Mouth: MouthDetector must say "moved" on every talking `mouth_clips` entry and (almost)
never on the blink clips, recorded for blinking, not talking.

Hold states (service.liveness.holds, the challenge script's eyes_closed / mouth_open):
HoldTracker on every frame, as tests/test_holds.py: labelled blinks read closed, open
frames read closed, the longest closed run; the GRID speech and silent ZJU clips
reading mouth_open.

Subject-wise cross-validation of the blink detector: for each of the 14 ZJU people,
the thresholds (enter, close and reopen ratios, longest closure, open-eye level
percentile: CV_GRID) are chosen on the other 13 people's clips (best F1 over a grid
around the defaults) and scored on the held-back person's clips; the sums over the 14
folds say what the detector does on people its thresholds were not fitted on.

`--plain` runs FaceMesh without attention (468 points, face_landmark.tflite from the
same wheel) instead of the service's model with attention, for a side-by-side
comparison: it is cheaper per frame, and these tables show what it costs in accuracy.

Landmarks are cached per clip and rate under /tmp (a bench convenience, not part of the
service), so re-running after a parameter change takes seconds; parameters come from
the service Config, so SERVICE_BLINK_* / SERVICE_MOUTH_* environment variables try
other values without editing code. Timings are measured afresh on a few clips each run.

    .venv/bin/python bench/blink_eval.py [--fps 15] [--data ../shared/data] [--plain]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.config import load_config
from service.liveness.blink import BlinkDetector, BlinkSettings
from service.liveness.geometry import eye_aspect_ratio, eye_openness, mouth_aspect_ratio
from service.liveness.holds import HoldSettings, HoldTracker
from service.liveness.mouth import MouthDetector, MouthSettings
from service.liveness.turns import nose_yaw
from service.media.frames import Frame, decode_frames
from service.vision.landmarks import FaceLandmarker
from testing.frame_runs import closed_runs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CACHE_DIR = Path("/tmp/blink_eval_cache")
# Part of the cache key: bump it when the decoder or the landmarker changes (or --fresh).
CACHE_VERSION = "facemesh-1face-v2"
# The fixed-threshold baseline of shared/data/README.md.
BASELINE_EAR = 0.2
# decode_frames keeps every frame when asked for more than the source rate.
EVERY_FRAME_FPS = 1000.0
TIMED_CLIPS = 4
# The cross-validation's threshold grid (BlinkSettings fields), around the defaults.
CV_GRID = {"enter_ratio": (0.75, 0.8, 0.85), "close_ratio": (0.65, 0.7, 0.75, 0.8),
           "reopen_fraction": (0.5, 0.6, 0.7), "max_duration_s": (0.5, 0.7, 0.9),
           "baseline_percentile": (80.0, 85.0, 90.0)}


@dataclass(frozen=True)
class Series:
    """Per analysed frame: time, landmarks of the largest face (NaN without a face)."""

    t: np.ndarray
    lm: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.lm[:, 0, 0])


def _tracked(data: bytes, fps: float, attention: bool
             ) -> Iterator[tuple[Frame, list[np.ndarray]]]:
    landmarker = FaceLandmarker(attention=attention)
    try:
        for frame in decode_frames(data, fps=fps):
            yield frame, landmarker.detect(frame.image)
    finally:
        landmarker.close()


def analyse(data_dir: Path, path: str, fps: float, fresh: bool = False,
            attention: bool = True) -> Series:
    version = CACHE_VERSION if attention else f"{CACHE_VERSION}-468"
    key = hashlib.sha1(f"{path}|{fps}|{version}".encode()).hexdigest()[:16]
    cached = CACHE_DIR / f"{key}.npz"
    if cached.exists() and not fresh:
        z = np.load(cached)
        return Series(t=z["t"], lm=z["lm"])
    ts, lms = [], []
    points = 478 if attention else 468
    for frame, faces in _tracked((data_dir / path).read_bytes(), fps, attention):
        ts.append(frame.t)
        lms.append(faces[0] if faces else np.full((points, 3), np.nan, np.float32))
    series = Series(t=np.array(ts), lm=np.array(lms, dtype=np.float32))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(cached, t=series.t, lm=series.lm)
    return series


def frontal(series: Series, max_yaw: float) -> np.ndarray:
    """The engine's own frontal gate (EngineSettings.cue_max_yaw, nose yaw in eye
    distances), so the benchmark scores exactly the samples the service uses."""
    ok = series.present.copy()
    for i in np.flatnonzero(ok):
        ok[i] = abs(nose_yaw(series.lm[i])) < max_yaw
    return ok


def ears(series: Series, measure=eye_openness) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Per-eye series of `measure`: the engine's eye openness (lid gap over nose length)
    for our detector, the classic eye aspect ratio for the fixed-threshold baseline."""
    left = np.array([measure(lm, "left") if ok else np.nan
                     for lm, ok in zip(series.lm, series.present)])
    right = np.array([measure(lm, "right") if ok else np.nan
                      for lm, ok in zip(series.lm, series.present)])
    return left, right


def our_blinks(series: Series, params: BlinkSettings, ok: np.ndarray) -> list[tuple[float, float]]:
    detector = BlinkDetector(params)
    left, right = ears(series)
    events = []
    for t, el, er, good in zip(series.t, left, right, ok):
        event = detector.update(float(t), float(el), float(er), frontal_ok=bool(good))
        if event is not None:
            events.append((event.start_t, event.end_t))
    return events


def threshold_blinks(series: Series) -> list[tuple[float, float]]:
    """Runs of frames with mean EAR under BASELINE_EAR, each run one blink."""
    left, right = ears(series, eye_aspect_ratio)
    closed = (left + right) / 2.0 < BASELINE_EAR
    return closed_runs(series.t, [bool(c) for c in closed])


def match(detected: list[tuple[float, float]], labels: list[list[int]],
          fps: float) -> tuple[int, int, int]:
    """(TP, FP, FN): one-to-one, largest overlaps first, intervals in source frames."""
    det = [(round(a * fps), round(b * fps)) for a, b in detected]
    pairs = []
    for i, (a, b) in enumerate(det):
        for j, (la, lb) in enumerate(labels):
            overlap = min(b, lb) - max(a, la) + 1
            if overlap > 0:
                pairs.append((overlap, i, j))
    used_d, used_l = set(), set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_d and j not in used_l:
            used_d.add(i)
            used_l.add(j)
    tp = len(used_d)
    return tp, len(det) - tp, len(labels) - tp


def run_mouth(series: Series, params: MouthSettings, ok: np.ndarray) -> MouthDetector:
    detector = MouthDetector(params)
    for t, lm, good in zip(series.t, series.lm, ok):
        mar = mouth_aspect_ratio(lm) if good else 0.0
        detector.update(float(t), mar, frontal_ok=bool(good))
    return detector


def hold_states(series: Series, params: HoldSettings) -> tuple[list[bool], list[bool]]:
    """(eyes closed, mouth open) per frame, from HoldTracker as the engine runs it."""
    tracker = HoldTracker(params)
    closed, mouth = [], []
    for t, lm, ok in zip(series.t, series.lm, series.present):
        state = tracker.update(float(t), lm) if ok else None
        closed.append(bool(state and state.eyes_closed))
        mouth.append(bool(state and state.mouth_open))
    return closed, mouth


def hold_report(clips: list[tuple[dict[str, Any], Series]], talking: list[Series],
                params: HoldSettings) -> None:
    """Eyes closed and mouth open on every frame (tests/test_holds.py's measures)."""
    blinks = caught = open_frames = open_closed = 0
    longest = 0.0
    silent_mouth = 0
    for clip, series in clips:
        closed, mouth = hold_states(series, params)
        runs = closed_runs(series.t, closed)
        longest = max([longest] + [b - a for a, b in runs])
        frame_of = np.round(series.t * clip["fps"]).astype(int)
        near = np.zeros(len(series.t), bool)
        for first, last in clip["blinks"]:
            blinks += 1
            t0, t1 = first / clip["fps"], last / clip["fps"]
            caught += any(a <= t1 + 1e-6 and b >= t0 - 1e-6 for a, b in runs)
            near |= (frame_of >= first - 3) & (frame_of <= last + 3)
        usable = ~near & series.present
        open_frames += int(usable.sum())
        open_closed += int((np.array(closed) & usable).sum())
        silent_mouth += any(mouth)
    speech_runs = [closed_runs(s.t, hold_states(s, params)[1]) for s in talking]
    speech_longest = max((b - a for runs in speech_runs for a, b in runs), default=0.0)
    print("\n## Hold states on every frame (HoldTracker)\n")
    print("| measure | value |\n|---|---|")
    print(f"| labelled blinks read eyes_closed | {caught}/{blinks} |")
    print(f"| longest eyes_closed run | {longest:.2f} s |")
    print(f"| open frames (3+ frames from a labelled blink) read closed | {open_closed}/"
          f"{open_frames} ({100 * open_closed / max(1, open_frames):.2f}%) |")
    print(f"| speech clips reading mouth_open / longest run | "
          f"{sum(bool(r) for r in speech_runs)}/{len(talking)} / {speech_longest:.2f} s |")
    print(f"| silent ZJU clips reading mouth_open | {silent_mouth}/{len(clips)} |")


def cross_validate(clips: list[tuple[dict[str, Any], Series, np.ndarray]],
                   base: BlinkSettings) -> tuple[np.ndarray, list[str]]:
    """Leave one subject out: thresholds with the best F1 on the other subjects (ties:
    the one nearest the defaults), scored on the held-back subject; summed TP/FP/FN
    and each fold's choice."""
    names = list(CV_GRID)
    grid = [dataclasses.replace(base, **dict(zip(names, values)))
            for values in itertools.product(*CV_GRID.values())
            if values[1] <= values[0]]  # close_ratio <= enter_ratio
    counts = np.zeros((len(grid), len(clips), 3), int)
    for g, params in enumerate(grid):
        for c, (clip, series, ok) in enumerate(clips):
            counts[g, c] = match(our_blinks(series, params, ok), clip["blinks"], clip["fps"])
    distance = np.array([sum(abs(getattr(p, n) / getattr(base, n) - 1) for n in names)
                         for p in grid])
    subjects = sorted({clip["subject"] for clip, _, _ in clips})
    total = np.zeros(3, int)
    chosen = []
    for subject in subjects:
        held = np.array([clip["subject"] == subject for clip, _, _ in clips])
        tp, fp, fn = counts[:, ~held].sum(axis=1).T
        f1 = 2 * tp / np.maximum(1, 2 * tp + fp + fn)
        best = int(np.lexsort((distance, -f1))[0])
        total += counts[best, held].sum(axis=0)
        chosen.append(f"{subject}: " + ", ".join(f"{getattr(grid[best], n):g}" for n in names))
    return total, chosen


def pr(tp: int, fp: int, fn: int) -> str:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return f"{100 * precision:.1f}% | {100 * recall:.1f}%"


def timing(data_dir: Path, paths: list[str], fps: float, attention: bool
           ) -> tuple[float, float, int]:
    """Fresh ms per analysed frame for decoding and for landmarks, over `paths`."""
    decode_s = landmark_s = 0.0
    frames = 0
    for path in paths:
        landmarker = FaceLandmarker(attention=attention)
        stream = decode_frames((data_dir / path).read_bytes(), fps=fps)
        while True:
            t0 = time.perf_counter()
            frame = next(stream, None)
            t1 = time.perf_counter()
            if frame is None:
                break
            landmarker.detect(frame.image)
            landmark_s += time.perf_counter() - t1
            decode_s += t1 - t0
            frames += 1
        landmarker.close()
    return 1000 * decode_s / frames, 1000 * landmark_s / frames, frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=15.0, help="analysis rate")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-every-frame", action="store_true",
                        help="skip the baseline on every source frame (slow first run)")
    parser.add_argument("--fresh", action="store_true", help="ignore the landmark cache")
    parser.add_argument("--plain", action="store_true",
                        help="FaceMesh without attention (468 points), for comparison")
    args = parser.parse_args(argv)
    args.attention = not args.plain
    model = "FaceMesh with attention, 478 points" if args.attention else \
        "FaceMesh without attention, 468 points"
    config = load_config()
    blink_params = config.engine.blink
    mouth_params = config.engine.mouth
    labels: dict[str, Any] = json.loads((args.data / "labels.json").read_text())

    print(f"## Blinks at {args.fps:g} fps, {model} ({platform.machine()}, "
          f"Python {platform.python_version()})\n")
    print("| clip | labelled | ours TP/FP/FN | baseline TP/FP/FN | mouth events |")
    print("|---|---|---|---|---|")
    ours = np.zeros(3, int)
    base = np.zeros(3, int)
    every = np.zeros(3, int)
    mouth_false_yes = []
    fitted: list[tuple[dict[str, Any], Series, np.ndarray]] = []
    every_frame: list[tuple[dict[str, Any], Series]] = []
    for clip in labels["blink_clips"]:
        series = analyse(args.data, clip["path"], args.fps, args.fresh, args.attention)
        ok = frontal(series, config.engine.cue_max_yaw)
        fitted.append((clip, series, ok))
        mine = match(our_blinks(series, blink_params, ok), clip["blinks"], clip["fps"])
        theirs = match(threshold_blinks(series), clip["blinks"], clip["fps"])
        ours += mine
        base += theirs
        if not args.no_every_frame:
            full = analyse(args.data, clip["path"], EVERY_FRAME_FPS, args.fresh,
                           args.attention)
            every_frame.append((clip, full))
            every += match(threshold_blinks(full), clip["blinks"], clip["fps"])
        mouth = run_mouth(series, mouth_params, ok)
        if mouth.moved:
            mouth_false_yes.append(clip["path"])
        flag = "" if mine[1] == mine[2] == 0 else " ⚠"
        print(f"| {Path(clip['path']).stem}{flag} | {len(clip['blinks'])} | "
              f"{'/'.join(map(str, mine))} | {'/'.join(map(str, theirs))} | "
              f"{len(mouth.events)} |")

    print("\n| detector | TP | FP | FN | precision | recall |")
    print("|---|---|---|---|---|---|")
    print(f"| BlinkDetector, {args.fps:g} fps | {ours[0]} | {ours[1]} | {ours[2]} | "
          f"{pr(*ours)} |")
    print(f"| EAR < {BASELINE_EAR}, {args.fps:g} fps | {base[0]} | {base[1]} | {base[2]} | "
          f"{pr(*base)} |")
    if not args.no_every_frame:
        print(f"| EAR < {BASELINE_EAR}, every frame | {every[0]} | {every[1]} | {every[2]} | "
              f"{pr(*every)} |")
    cv, chosen = cross_validate(fitted, blink_params)
    print(f"| BlinkDetector, {args.fps:g} fps, subject-wise cross-validation (thresholds "
          f"fitted on the other 13 people) | {cv[0]} | {cv[1]} | {cv[2]} | {pr(*cv)} |")
    print(f"\nthresholds chosen per held-back subject ({', '.join(CV_GRID)}): "
          f"{'; '.join(chosen)}")

    print(f"\n## Mouth movement (moved = at least {mouth_params.min_events} excursions)\n")
    print("| clip | talking | excursions | amplitudes | moved |")
    print("|---|---|---|---|---|")
    talking_yes = talking = 0
    for clip in labels["mouth_clips"]:
        series = analyse(args.data, clip["path"], args.fps, args.fresh, args.attention)
        mouth = run_mouth(series, mouth_params, frontal(series, config.engine.cue_max_yaw))
        talking += clip["talking"]
        talking_yes += clip["talking"] and mouth.moved
        amps = ", ".join(f"{e.amplitude:.2f}" for e in mouth.events)
        print(f"| {Path(clip['path']).name} | {clip['talking']} | {len(mouth.events)} | "
              f"{amps} | {'yes' if mouth.moved else 'no'} |")
    n_blink = len(labels["blink_clips"])
    print(f"\ntalking clips said yes: {talking_yes}/{talking}; blink clips (not meant to talk) "
          f"said yes: {len(mouth_false_yes)}/{n_blink} "
          f"({100 * len(mouth_false_yes) / n_blink:.1f}%) {mouth_false_yes}")

    if every_frame:
        talking = [analyse(args.data, c["path"], EVERY_FRAME_FPS, args.fresh, args.attention)
                   for c in labels["mouth_clips"] if c["talking"]]
        hold_report(every_frame, talking, config.engine.holds)

    timed = [c["path"] for c in labels["blink_clips"][:TIMED_CLIPS]]
    timed.append(labels["mouth_clips"][0]["path"])
    decode_ms, landmark_ms, frames = timing(args.data, timed, args.fps, args.attention)
    print(f"\n## Speed ({frames} frames of {len(timed)} clips, {args.fps:g} fps)\n")
    print("| stage | ms per analysed frame |")
    print("|---|---|")
    print(f"| decode + sample + convert | {decode_ms:.2f} |")
    print(f"| landmarks ({model}) | {landmark_ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
