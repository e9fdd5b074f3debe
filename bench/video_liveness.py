"""Video liveness: cue verdicts on every labelled clip, our own splices, and speed.

In-process (the same `analyse_video` the HTTP handler runs), one model thread:

1. verdicts on shared/data clips: blink `yes` on the blink clips, mouth `yes` on the
   talking clips and false mouth `yes` on the blink clips (nobody talks there),
   replacement as labelled on the spliced clips and never on the blink clips, live rate;
2. our own splices from the blink clips: two different people cut together at 1.5, 2.5
   and 3.5 s, the same person in two conditions (must stay `no`), and a "push" where
   the second person's picture slides in from the side over 0.5 s;
3. speed: the stage table of bench/frame_stages.py (640x480 H.264 at 15 fps, the
   streaming path), per analysed frame, on one core.

    .venv/bin/python bench/video_liveness.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
from collections import defaultdict
from pathlib import Path

import cv2
import frame_stages
import numpy as np

from models.manifest import resolve_models
from service.app import MODEL_NAMES
from service.config import Config
from service.errors import ApiError
from service.judging.video import analyse_video
from service.vision.runtime import ModelRuntime
from testing.service_process import DATA
from testing.videos import decode_all, encode, held_photo

ROOT = Path(__file__).resolve().parents[1]


def verdict(runtime: ModelRuntime, cfg: Config, data: bytes) -> dict:
    try:
        d = analyse_video(runtime, data, cfg.media, cfg.engine, cfg.faces, cfg.silent,
                          cfg.video_policy)
    except ApiError as exc:
        return {"status": exc.status}
    assert d.cues is not None  # a clip's decision
    return {"status": "2000", "live": d.live, "blink": d.cues.blinked,
            "mouth": d.cues.mouth_moved, "replaced": d.cues.replaced, "reasons": d.words,
            "min_cosine": d.detail["identity"]["min_cosine"]}


def rate(rows: list[dict], key: str) -> str:
    ok = [r for r in rows if r["status"] == "2000"]
    hits = sum(bool(r[key]) for r in ok)
    return f"{hits}/{len(ok)} ({hits / max(1, len(ok)):.0%})"


def labelled(runtime: ModelRuntime, cfg: Config, labels: dict, quick: bool) -> None:
    blink_clips = labels["blink_clips"][:: 4 if quick else 1]
    blink = [verdict(runtime, cfg, (DATA / c["path"]).read_bytes()) for c in blink_clips]
    talking = [verdict(runtime, cfg, (DATA / c["path"]).read_bytes())
               for c in labels["mouth_clips"] if c["talking"]]
    spliced = [(c, verdict(runtime, cfg, (DATA / c["path"]).read_bytes()))
               for c in labels["spliced_clips"]]
    multi = [verdict(runtime, cfg, (DATA / c["path"]).read_bytes())
             for c in labels["multi_face_videos"]]
    print("\n| shared/data clips | result |\n|---|---|")
    print(f"| blink clips: blinking yes | {rate(blink, 'blink')} |")
    print(f"| blink clips: mouth yes (false: nobody talks) | {rate(blink, 'mouth')} |")
    print(f"| blink clips: replacement yes (false) | {rate(blink, 'replaced')} |")
    print(f"| blink clips: Living body | {rate(blink, 'live')} |")
    print(f"| talking clips: mouth yes | {rate(talking, 'mouth')} |")
    print(f"| talking clips: Living body | {rate(talking, 'live')} |")
    right = sum(r.get("replaced") == c["replaced"] for c, r in spliced)
    print(f"| spliced clips answered as labelled | {right}/{len(spliced)} |")
    for c, r in spliced:
        print(f"|   {Path(c['path']).name} (labelled {c['replaced']}) | "
              f"{r.get('replaced', r['status'])} |")
    for c, r in zip(labels["multi_face_videos"], multi):
        print(f"| {Path(c['path']).name} ({c['note']}) | status {r['status']}"
              f"{', replaced ' + str(r['replaced']) if r['status'] == '2000' else ''} |")


def cut(a: list[np.ndarray], b: list[np.ndarray], at: int) -> list[np.ndarray]:
    size = (a[0].shape[1], a[0].shape[0])
    return a[:at] + [cv2.resize(f, size) for f in b[at:]]


def push(a: list[np.ndarray], b: list[np.ndarray], at: int, frames: int) -> list[np.ndarray]:
    """B slides in from the right, pushing A out to the left, over `frames` frames."""
    h, w = a[0].shape[:2]
    b = [cv2.resize(f, (w, h)) for f in b]
    out = a[:at]
    for i in range(frames):
        shift = int(w * (i + 1) / frames)
        out.append(np.hstack([a[at + i][:, shift:], b[at + i][:, :shift]]))
    return out + b[at + frames:]


def own_splices(runtime: ModelRuntime, cfg: Config, labels: dict, quick: bool) -> None:
    clips = {f"{c['subject']}_{c['condition']}": c for c in labels["blink_clips"]}
    cache: dict[str, list[np.ndarray]] = {}

    def frames(name: str) -> list[np.ndarray]:
        if name not in cache:
            cache[name] = decode_all((DATA / clips[name]["path"]).read_bytes())
        return cache[name]

    rng = random.Random(7)
    subjects = sorted({c["subject"] for c in labels["blink_clips"]})
    pairs = [(a, b) for a, b in itertools.permutations(subjects, 2)]
    rng.shuffle(pairs)
    pairs = pairs[: 4 if quick else 12]
    results: dict[str, list[bool]] = defaultdict(list)
    cosines: dict[str, list[float]] = defaultdict(list)
    fps = 30
    for a, b in pairs:
        fa, fb = frames(f"{a}_FNN"), frames(f"{b}_FNN")
        n = min(len(fa), len(fb))
        for at_s in (1.5, 2.5, 3.5):
            at = int(at_s * fps)
            if at < n - 10:
                r = verdict(runtime, cfg, encode(cut(fa[:n], fb[:n], at), fps=fps))
                results[f"two people, cut at {at_s} s"].append(r.get("replaced") is True)
                cosines["two people"].append(r.get("min_cosine") or 1.0)
        r = verdict(runtime, cfg, encode(push(fa[:n], fb[:n], int(2.0 * fps), fps // 2), fps=fps))
        results["two people, B pushes A out from the side (0.5 s)"].append(
            r.get("replaced") is True)
    for subject in subjects[: 5 if quick else None]:
        for c1, c2 in (("FNN", "FBN"), ("FNN", "UNN"), ("FTN", "FNN")):
            f1, f2 = frames(f"{subject}_{c1}"), frames(f"{subject}_{c2}")
            n = min(len(f1), len(f2))
            r = verdict(runtime, cfg, encode(cut(f1[:n], f2[:n], int(2.5 * fps)), fps=fps))
            results["same person, two conditions (must stay no)"].append(
                r.get("replaced") is True)
            cosines["same person"].append(r.get("min_cosine") or 1.0)
    # photo attacks: every live frame of shared/data, still and tilted back and forth
    for name, make in (("still photo (3 s)", lambda im: [im] * 45),
                       ("photo tilted back and forth (4 s)", lambda im: held_photo(im, 4.0))):
        for path in sorted((DATA / "spoof/live_frames").glob("*.jpg"))[: 5 if quick else None]:
            r = verdict(runtime, cfg, encode(make(cv2.imread(str(path))), fps=15))
            results[f"attack: {name}, said Living body"].append(r.get("live") is True)
    for name, values in cosines.items():
        print(f"lowest identity cosine per clip, {name}: "
              f"{', '.join(f'{v:.2f}' for v in sorted(values))}")
    print("\n| own splices and photo attacks | yes |\n|---|---|")
    for name, hits in results.items():
        print(f"| {name} | {sum(hits)}/{len(hits)} ({sum(hits) / len(hits):.0%}) |")


def speed(runtime: ModelRuntime, cfg: Config, labels: dict) -> None:
    """The streaming path's stage table (bench/frame_stages.py) on 9 blink clips."""
    clips = [c["path"] for c in labels["blink_clips"]][:9]
    watch, analysed = frame_stages.measure(runtime, cfg, clips)
    frame_stages.table(watch, analysed, cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset, for a smoke run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["labelled", "splices", "speed"])
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = Config(model_dir=Path(os.environ.get("SERVICE_MODEL_DIR", ROOT / ".models")))
    runtime = ModelRuntime(resolve_models(cfg.model_dir, MODEL_NAMES), 1)
    runtime.warm_up()
    labels = json.loads((DATA / "labels.json").read_text())
    if "labelled" not in args.skip:
        labelled(runtime, cfg, labels, args.quick)
    if "splices" not in args.skip:
        own_splices(runtime, cfg, labels, args.quick)
    if "speed" not in args.skip:
        speed(runtime, cfg, labels)
    runtime.close()


if __name__ == "__main__":
    main()
