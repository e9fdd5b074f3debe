"""What one analysed frame of a stream costs, stage by stage, on one core.

The streaming path exactly: the blink clips at 640x480 and 15 fps, encoded once as
H.264 like the load generator's packets (bench/_load_clients.py), decoded packet by
packet as aiortc's receiver does (every received frame), and every frame the runner
would sample at the stream analysis rate (sessions.analysis_fps; 10 of 15) converted
(frame_from_av) and fed to a LivenessEngine built as the runner builds it, with a warm
pooled landmarker. Each stage is timed with the process CPU clock (so MediaPipe's
graph threads count, and another process on the core does not) and with the wall
clock. The first clip warms up and is not counted.

Stages: decode (per analysed frame: 1.5 received frames at 15 -> 10 fps), convert
(to BGR at the working size), landmarks (FaceMesh, colour conversion and the landmark
copy included), face count (BlazeFace, once a second), identity (SFace samples at
random intervals; a stream embeds them as pool jobs of their own, beside the frames'
analysis, so the table also gives the frame's own job without them), best frame (face
crop statistics and the keeper), cues (all the rest of `feed`: eye, mouth, yaw, holds,
planarity, the identity track's checks, hints).

    taskset -c 1 .venv/bin/python bench/frame_stages.py [--clips 9]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import av
from _load_clients import clip_frames_of, encode_once

import service.liveness.engine as engine_module
from models.manifest import resolve_models
from service.app import MODEL_NAMES
from service.config import Config, load_config
from service.liveness.engine import LivenessEngine
from service.media.frames import frame_from_av
from service.vision.runtime import ModelRuntime
from testing.service_process import DATA

STREAM_FPS = 15.0


class Stopwatch:
    """CPU and wall seconds spent per stage."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.counting = True

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.counting:
                    self.cpu[stage] += time.process_time() - c0
                    self.wall[stage] += time.perf_counter() - w0
                    self.calls[stage] += 1
        return wrapper


class TimedLandmarker:
    def __init__(self, inner: Any, watch: Stopwatch) -> None:
        self.detect = watch.timed("landmarks", inner.detect)
        self.face_boxes = watch.timed("face count", inner.face_boxes)


def measure(runtime: ModelRuntime, cfg: Config, clips: list[str]) -> tuple[Stopwatch, int]:
    """The stopwatch over all clips but the first, and the frames analysed there."""
    watch = Stopwatch()
    # the engine looks this up in its own module: time it where it calls it
    crop_stats = engine_module.face_crop_stats
    engine_module.face_crop_stats = watch.timed("best frame", crop_stats)
    try:
        return _measure(runtime, cfg, clips, watch)
    finally:
        engine_module.face_crop_stats = crop_stats


def _measure(runtime: ModelRuntime, cfg: Config, clips: list[str], watch: Stopwatch
             ) -> tuple[Stopwatch, int]:
    embed = watch.timed("identity", runtime.embed)
    analysed = 0
    ratio = cfg.sessions.analysis_fps / STREAM_FPS
    for i, path in enumerate(clips):
        packets = encode_once(clip_frames_of(DATA / path, STREAM_FPS), "H264", STREAM_FPS)
        watch.counting = i > 0
        decoder = av.CodecContext.create("h264", "r")
        decode = watch.timed("decode", lambda p, d=decoder: d.decode(av.Packet(p)))
        convert = watch.timed("convert", frame_from_av)
        pooled = runtime.landmarkers.acquire()
        engine = LivenessEngine(TimedLandmarker(pooled, watch), embed, cfg.engine)
        engine.best.offer = watch.timed("best frame", engine.best.offer)  # type: ignore[method-assign]
        feed = watch.timed("feed", engine.feed)
        for k, packet in enumerate(packets):
            for av_frame in decode(packet):
                if int((k + 1) * ratio) == int(k * ratio):
                    continue  # the sampler took a newer frame instead
                t = k / STREAM_FPS
                feed(convert(av_frame, engine.analysed, t, cfg.media.work_side))
                analysed += watch.counting
        runtime.landmarkers.release(pooled)
    return watch, analysed


def table(watch: Stopwatch, analysed: int, cfg: Config) -> None:
    parts = ["landmarks", "face count", "identity", "best frame"]
    rest_cpu = watch.cpu["feed"] - sum(watch.cpu[p] for p in parts)
    rest_wall = watch.wall["feed"] - sum(watch.wall[p] for p in parts)
    rows = [("decode (1.5 received frames)", watch.cpu["decode"], watch.wall["decode"], ""),
            ("convert to BGR, working size", watch.cpu["convert"], watch.wall["convert"], ""),
            ("landmarks (FaceMesh)", watch.cpu["landmarks"], watch.wall["landmarks"], ""),
            ("cues, holds, planarity, identity checks, hints", rest_cpu, rest_wall, ""),
            ("best frame (crop statistics, keeper)", watch.cpu["best frame"],
             watch.wall["best frame"], ""),
            ("face count (BlazeFace)", watch.cpu["face count"], watch.wall["face count"],
             f"{watch.calls['face count']} calls"),
            ("identity (SFace samples)", watch.cpu["identity"], watch.wall["identity"],
             f"{watch.calls['identity']} samples")]
    per = 1000.0 / analysed
    print(f"\n{analysed} analysed frames (640x480 H.264 at {STREAM_FPS:g} fps, analysed at "
          f"{cfg.sessions.analysis_fps:g} fps), steady state, ms per analysed frame\n")
    print("| stage | CPU | wall | note |\n|---|---|---|---|")
    for name, cpu, wall, note in rows:
        print(f"| {name} | {cpu * per:.2f} | {wall * per:.2f} | {note} |")
    total_cpu = sum(r[1] for r in rows)
    total_wall = sum(r[2] for r in rows)
    print(f"| **total** | **{total_cpu * per:.2f}** | {total_wall * per:.2f} | "
          f"{analysed / total_cpu:.0f} analysed frames per CPU second |")
    job_cpu = sum(r[1] for r in rows[1:-1])
    job_wall = sum(r[2] for r in rows[1:-1])
    print(f"| the frame's own job in the pool (convert to face count; no decode, no "
          f"identity) | {job_cpu * per:.2f} | {job_wall * per:.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=9, help="blink clips (first warms up)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = load_config()
    runtime = ModelRuntime(resolve_models(cfg.model_dir, MODEL_NAMES), 1)
    runtime.warm_up()
    labels = json.loads((DATA / "labels.json").read_text())
    clips = [c["path"] for c in labels["blink_clips"]][: args.clips]
    try:
        watch, analysed = measure(runtime, cfg, clips)
    finally:
        runtime.close()
    table(watch, analysed, cfg)


if __name__ == "__main__":
    main()
