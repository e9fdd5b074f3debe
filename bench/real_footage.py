"""Real footage (issue 19): every clip of shared/data/turns plus the blink and mouth
clips, each as a typeId 3035 upload and as a passive stream, against the real service
started as its own process (loopback).

Per clip and path: the verdict, replacement yes/no (with the lowest identity cosine and
the samples taken), the planarity measure (testing/planarity.py, no longer
part of `detail`, run here over the clip's own landmarks), and the turns found against
the labelled yaw (labels.json `turn_clips`): a labelled turn is an excursion beyond
30 degrees from the person's rest (the median labelled yaw, held within 12 degrees of
frontal), in at least 2 labelled frames, ending when the yaw comes back within 15
degrees; each must have an upload's turn event of its side inside it (+-0.5 s), and
a turn event is wrong when the labelled yaw within 0.3 s of it is not 15 degrees or
more from rest to its side.
Streams loop the clip from a random point, so for them only the sides are compared.
Then one clip uploaded `--repeat` times: how many different answers.

    .venv/bin/python bench/real_footage.py [--streams] [--repeat 10] [--blink N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics

import aiohttp

from service.vision.landmarks import FaceLandmarker
from testing.client import VerifyClient
from testing.planarity import PlanarityDetector
from testing.rtc_client import ClipTrack, WhipClient, create_session
from testing.service_process import DATA, KEY, SECRET, running_service
from testing.videos import decode_all

TURN_DEG, BACK_DEG, REST_LIMIT_DEG = 30.0, 15.0, 12.0


def rest_of(yaw: list[float | None]) -> float:
    known = [y for y in yaw if y is not None]
    return min(max(statistics.median(known), -REST_LIMIT_DEG), REST_LIMIT_DEG)


def excursions(yaw: list[float | None], fps: float) -> list[tuple[str, float, float]]:
    """(side, start s, end s) of each labelled turn beyond TURN_DEG from rest, seen in
    at least 2 labelled frames (a turn needs 2 analysed frames; a single GIF frame
    without a face for our landmarker cannot be detected by anyone)."""
    rest = rest_of(yaw)
    out: list[tuple[str, float, float]] = []
    side, start, beyond = None, 0, 0
    for i, y in enumerate(yaw + [rest]):
        delta = None if y is None else y - rest
        now = side
        if delta is not None and abs(delta) >= TURN_DEG:
            now = "turn_left" if delta > 0 else "turn_right"
        elif delta is not None and abs(delta) < BACK_DEG:
            now = None
        if now != side:
            if side is not None and beyond >= 2:
                out.append((side, start / fps, i / fps))
            side, start, beyond = now, i, 0
        beyond += delta is not None and abs(delta) >= TURN_DEG
    return out


def wrong_side(event: dict, yaw: list[float | None], fps: float) -> bool:
    """Is a turn event not backed by the labelled yaw (beyond BACK_DEG from rest to
    its side, within 0.3 s of it)?"""
    rest, i = rest_of(yaw), round(event["t"] * fps)
    sign = 1 if event["kind"] == "turn_left" else -1
    near = [y for y in yaw[max(0, i - round(0.3 * fps)):i + round(0.3 * fps) + 1]
            if y is not None]
    return not any(sign * (y - rest) >= BACK_DEG for y in near)


def turn_check(events: list[dict], label: dict | None, timed: bool) -> str:
    found = [e for e in events if e["kind"] in ("turn_left", "turn_right")]
    text = ", ".join(f"{e['kind'][5]}{'@%.1f' % e['t'] if timed else ''}" for e in found)
    if label is None:
        return f"found {text or 'none'}"
    labelled = excursions(label["yaw_deg"], label["fps"])
    want = ", ".join(f"{s[5]}@{a:.1f}-{b:.1f}" for s, a, b in labelled) or "none"
    if timed:
        wrong = [e for e in found if wrong_side(e, label["yaw_deg"], label["fps"])]
        missed = [x for x in labelled if not any(
            e["kind"] == x[0] and x[1] - 0.5 <= e["t"] <= x[2] + 0.5 for e in found)]
    else:
        wrong = [e for e in found if e["kind"] not in {s for s, _, _ in labelled}]
        missed = [x for x in labelled if x[0] not in {e["kind"] for e in found}]
    verdict = "ok" if not wrong and not missed else \
        f"{len(missed)} missed, {len(wrong)} wrong"
    return f"labelled {want}; found {text or 'none'}: {verdict}"


def planarity(path: str) -> str:
    """The planarity measure over every frame's landmarks (as the engine fed it)."""
    landmarker, detector = FaceLandmarker(), PlanarityDetector()
    try:
        for i, image in enumerate(decode_all((DATA / path).read_bytes())):
            faces = landmarker.detect(image)
            if faces:
                detector.update(i / 15.0, faces[0])
            else:
                detector.reset()
    finally:
        landmarker.close()
    ratio = detector.median_ratio
    return "no motion" if ratio is None else \
        f"{'planar' if detector.planar else 'not planar'} ({ratio:.2f})"


def summary(body: dict) -> tuple[str, str, dict]:
    status = body["messageString"]["status"]
    if status != "2000":
        return f"error {status}", "-", {}
    items = {i["desc"]: i["content"] for i in body["infoList"][0]["veritem"]}
    detail = body.get("detail", {})
    identity = detail.get("identity", {})
    replaced = (f"{items['Whether there is a replacement']} (min {identity.get('min_cosine')}, "
                f"{identity.get('samples')} samples)")
    return items["Live or not"], replaced, detail


async def stream(http: aiohttp.ClientSession, url: str, path: str, offset: int) -> dict:
    frames = decode_all((DATA / path).read_bytes())
    frames = frames[offset % len(frames):] + frames[:offset % len(frames)]
    status, session = await create_session(http, url, KEY, SECRET, challenges=0)
    assert status == 201, session
    client = WhipClient(session, http)
    await client.connect(ClipTrack(frames, fps=15))
    try:
        return await asyncio.wait_for(client.result, 60)
    finally:
        await client.hang_up()


async def run(args: argparse.Namespace, url: str) -> None:
    labels = json.loads((DATA / "labels.json").read_text())
    turn_labels = {c["path"]: c for c in labels["turn_clips"]}
    clips = (list(turn_labels) + [c["path"] for c in labels["blink_clips"]][:args.blink]
             + [c["path"] for c in labels["mouth_clips"]])
    rows, false_replaced = [], {"upload": 0, "stream": 0}
    planes = {p: planarity(p) for p in turn_labels}  # before the streams: it blocks
    async with aiohttp.ClientSession() as http:
        verify = VerifyClient(url, KEY, SECRET, http)
        gate = asyncio.Semaphore(args.concurrency)

        async def one(index: int, path: str) -> list[str]:
            label = turn_labels.get(path)
            async with gate:
                _, body = await verify.verify(3035, img=(DATA / path).read_bytes())
                payload = await stream(http, url, path, 7 * index) if args.streams else None
            cells = []
            for kind, result in (("upload", body), ("stream", payload)):
                if result is None:
                    continue
                verdict, replaced, detail = summary(result)
                false_replaced[kind] += replaced.startswith("yes")
                turns = turn_check(detail.get("events", []), label, kind == "upload") \
                    if label else "-"
                cells.append(f"| {path} | {kind} | {verdict} | {replaced} | "
                             f"{planes[path] if label and kind == 'upload' else ''} | "
                             f"{turns} |")
            return cells

        print("| clip | path | verdict | replacement | planarity (module, not reported) "
              "| turns vs labelled yaw |\n|---|---|---|---|---|---|", flush=True)

        async def printed(index: int, path: str) -> None:
            for cell in await one(index, path):
                print(cell, flush=True)
                rows.append(cell)

        await asyncio.gather(*(printed(i, p) for i, p in enumerate(clips)))
        print(f"\nfalse replacements: {false_replaced['upload']} of {len(clips)} uploads, "
              f"{false_replaced['stream']} of {len(clips) if args.streams else 0} streams")
        for path in args.repeat_clips:
            answers = set()
            for _ in range(args.repeat):
                _, body = await verify.verify(3035, img=(DATA / path).read_bytes())
                answers.add(json.dumps([body["infoList"], body["detail"].get("identity"),
                                        body["detail"].get("events")], sort_keys=True))
            print(f"{path} uploaded {args.repeat} times: {len(answers)} different answer(s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", action="store_true", help="also as passive streams")
    parser.add_argument("--blink", type=int, default=56, help="how many ZJU blink clips")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--repeat-clips", nargs="*",
                        default=["turns/intel_female.mp4", "turns/fsa_webcam.mp4"])
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.url:
        asyncio.run(run(args, args.url))
        return
    # a passive stream watches the whole of the longest clip (fsa_webcam, 15 s)
    with running_service({"SERVICE_SESSIONS__OBSERVATION_S": "16"}) as url:
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
