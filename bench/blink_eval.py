"""Blink and mouth cues on shared/data: event precision/recall against the labels.

For every `blink_clips` entry: decode at the analysis rate, track landmarks, feed the
eye aspect ratios to BlinkDetector, and match detected blinks to labelled ones (frame
intervals in the clip's own numbering, time * fps; a detection and a label match when
their intervals overlap, one-to-one). The baseline is a plain fixed-threshold detector
(mean EAR < 0.2 on at least one frame), run on the same frames and on every frame.
Mouth: MouthDetector must say "moved" on every talking `mouth_clips` entry and (almost)
never on the blink clips, recorded for blinking, not talking.

Landmarks are cached per clip and rate under /tmp (a bench convenience, not part of the
service), so re-running after a parameter change takes seconds; parameters come from
the service Config, so SERVICE_BLINK_* / SERVICE_MOUTH_* environment variables try
other values without editing code. Timings are measured afresh on a few clips each run.

    .venv/bin/python bench/blink_eval.py [--fps 15] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import hashlib
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
from service.liveness.blink import BlinkDetector, BlinkParams
from service.liveness.geometry import eye_aspect_ratio, eye_openness, mouth_aspect_ratio
from service.liveness.mouth import MouthDetector, MouthParams
from service.liveness.turns import nose_yaw
from service.video.frames import Frame, decode_frames
from service.vision.landmarks import NUM_LANDMARKS, FaceLandmarker

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


@dataclass(frozen=True)
class Series:
    """Per analysed frame: time, landmarks of the largest face (NaN without a face)."""

    t: np.ndarray
    lm: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.lm[:, 0, 0])


def _tracked(data: bytes, fps: float) -> Iterator[tuple[Frame, list[np.ndarray]]]:
    landmarker = FaceLandmarker()
    try:
        for frame in decode_frames(data, fps=fps):
            yield frame, landmarker.detect(frame.image)
    finally:
        landmarker.close()


def analyse(data_dir: Path, path: str, fps: float, fresh: bool = False) -> Series:
    key = hashlib.sha1(f"{path}|{fps}|{CACHE_VERSION}".encode()).hexdigest()[:16]
    cached = CACHE_DIR / f"{key}.npz"
    if cached.exists() and not fresh:
        z = np.load(cached)
        return Series(t=z["t"], lm=z["lm"])
    ts, lms = [], []
    for frame, faces in _tracked((data_dir / path).read_bytes(), fps):
        ts.append(frame.t)
        lms.append(faces[0] if faces else np.full((NUM_LANDMARKS, 3), np.nan, np.float32))
    series = Series(t=np.array(ts), lm=np.array(lms, dtype=np.float32))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(cached, t=series.t, lm=series.lm)
    return series


def frontal(series: Series, max_yaw: float) -> np.ndarray:
    """The engine's own frontal gate (EngineParams.frontal_max_yaw, nose yaw in eye
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


def our_blinks(series: Series, params: BlinkParams, ok: np.ndarray) -> list[tuple[float, float]]:
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
    events, start = [], None
    for t, c in zip(series.t, closed):
        if c and start is None:
            start = last = float(t)
        elif c:
            last = float(t)
        elif start is not None:
            events.append((start, last))
            start = None
    if start is not None:
        events.append((start, last))
    return events


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


def run_mouth(series: Series, params: MouthParams, ok: np.ndarray) -> MouthDetector:
    detector = MouthDetector(params)
    for t, lm, good in zip(series.t, series.lm, ok):
        mar = mouth_aspect_ratio(lm) if good else 0.0
        detector.update(float(t), mar, frontal_ok=bool(good))
    return detector


def pr(tp: int, fp: int, fn: int) -> str:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return f"{100 * precision:.1f}% | {100 * recall:.1f}%"


def timing(data_dir: Path, paths: list[str], fps: float) -> tuple[float, float, int]:
    """Fresh ms per analysed frame for decoding and for landmarks, over `paths`."""
    decode_s = landmark_s = 0.0
    frames = 0
    for path in paths:
        landmarker = FaceLandmarker()
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
    args = parser.parse_args(argv)
    config = load_config()
    blink_params = config.engine.blink
    mouth_params = config.engine.mouth
    labels: dict[str, Any] = json.loads((args.data / "labels.json").read_text())

    print(f"## Blinks at {args.fps:g} fps ({platform.machine()}, "
          f"Python {platform.python_version()})\n")
    print("| clip | labelled | ours TP/FP/FN | baseline TP/FP/FN | mouth events |")
    print("|---|---|---|---|---|")
    ours = np.zeros(3, int)
    base = np.zeros(3, int)
    every = np.zeros(3, int)
    mouth_false_yes = []
    for clip in labels["blink_clips"]:
        series = analyse(args.data, clip["path"], args.fps, args.fresh)
        ok = frontal(series, config.engine.frontal_max_yaw)
        mine = match(our_blinks(series, blink_params, ok), clip["blinks"], clip["fps"])
        theirs = match(threshold_blinks(series), clip["blinks"], clip["fps"])
        ours += mine
        base += theirs
        if not args.no_every_frame:
            full = analyse(args.data, clip["path"], EVERY_FRAME_FPS, args.fresh)
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

    print(f"\n## Mouth movement (moved = at least {mouth_params.min_events} excursions)\n")
    print("| clip | talking | excursions | amplitudes | moved |")
    print("|---|---|---|---|---|")
    talking_yes = talking = 0
    for clip in labels["mouth_clips"]:
        series = analyse(args.data, clip["path"], args.fps, args.fresh)
        mouth = run_mouth(series, mouth_params, frontal(series, config.engine.frontal_max_yaw))
        talking += clip["talking"]
        talking_yes += clip["talking"] and mouth.moved
        amps = ", ".join(f"{e.amplitude:.2f}" for e in mouth.events)
        print(f"| {Path(clip['path']).name} | {clip['talking']} | {len(mouth.events)} | "
              f"{amps} | {'yes' if mouth.moved else 'no'} |")
    n_blink = len(labels["blink_clips"])
    print(f"\ntalking clips said yes: {talking_yes}/{talking}; blink clips (not meant to talk) "
          f"said yes: {len(mouth_false_yes)}/{n_blink} "
          f"({100 * len(mouth_false_yes) / n_blink:.1f}%) {mouth_false_yes}")

    timed = [c["path"] for c in labels["blink_clips"][:TIMED_CLIPS]]
    timed.append(labels["mouth_clips"][0]["path"])
    decode_ms, landmark_ms, frames = timing(args.data, timed, args.fps)
    print(f"\n## Speed ({frames} frames of {len(timed)} clips, {args.fps:g} fps)\n")
    print("| stage | ms per analysed frame |")
    print("|---|---|")
    print(f"| decode + sample + convert | {decode_ms:.2f} |")
    print(f"| landmarks (Face Mesh, 478 points) | {landmark_ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
