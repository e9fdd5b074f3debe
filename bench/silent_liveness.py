"""Silent liveness (typeId 3035 + image): APCER / BPCER per attack type, and latency.

Runs the real service in its own process on loopback and sends every image over HTTP,
so the numbers include decoding, face finding, the quality gates and the PAD models.

Sets (ISO/IEC 30107-3 terms):
  bona fide    the labelled live images (shared/data spoof_images, label live) and the
               face photos of shared/data/faces (press and DSLR photos of real people)
  attacks      the labelled spoof images, per attack type, and attacks synthesised from
               every bona fide photo by bench/attacks.py (print, screen replay)
APCER = attacks classified "Living body"; BPCER = bona fide classified "Non-living body".
Images answered 4005 (cannot judge) or 4003/4004 are counted apart, not as either.

    .venv/bin/python bench/silent_liveness.py [--latency 40] [--scores out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
import cv2
import numpy as np
from attacks import ATTACKS
from verification_client import ApiError, AsyncClient

from testing.service_process import DATA, KEY, SECRET, run_with_service


def bona_fide_sets() -> dict[str, list[str]]:
    labels = json.loads((DATA / "labels.json").read_text())
    labelled = [s["path"] for s in labels["spoof_images"] if s["label"] == "live"]
    photos = sorted(str(p.relative_to(DATA)) for p in (DATA / "faces").rglob("*.jpg"))
    return {"labelled live images": labelled, "face photos": photos}


def labelled_attacks() -> dict[str, list[str]]:
    labels = json.loads((DATA / "labels.json").read_text())
    out: dict[str, list[str]] = defaultdict(list)
    for s in labels["spoof_images"]:
        if s["label"] == "spoof":
            out[f"{s['attack']} (labelled)"].append(s["path"])
    return dict(out)


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


async def judge(client: AsyncClient, data: bytes) -> dict:
    try:
        answer = await client.check_liveness(data)
    except ApiError as refused:  # 4003 no face, 4004 several, 4005 quality...
        return {"status": refused.envelope_status, "value": refused.value}
    return {"status": "2000", "live": answer.live, "score": answer.value,
            "p": answer.detail["live_probability"]}


async def run_set(client: AsyncClient, items: list[tuple[str, bytes]]) -> list[dict]:
    sem = asyncio.Semaphore(2)

    async def one(name: str, data: bytes) -> dict:
        async with sem:
            return {"name": name, **await judge(client, data)}

    return await asyncio.gather(*(one(n, d) for n, d in items))


def summarise(kind: str, name: str, results: list[dict]) -> dict:
    judged = [r for r in results if r["status"] == "2000"]
    wrong = [r for r in judged if r["live"] != (kind == "bona fide")]
    return {"kind": kind, "set": name, "n": len(results), "judged": len(judged),
            "unjudged": {s: sum(r["status"] == s for r in results)
                         for s in sorted({r["status"] for r in results} - {"2000"})},
            "error_rate": len(wrong) / max(1, len(judged)),
            "wrong": [r["name"] for r in wrong],
            "p": [r["p"] for r in judged]}


async def run(args: argparse.Namespace, url: str) -> None:
    rows, scores = [], {}
    async with aiohttp.ClientSession() as session:
        client = AsyncClient(url, KEY, SECRET, http=session)
        bona = bona_fide_sets()
        for name, paths in bona.items():
            res = await run_set(client, [(p, (DATA / p).read_bytes()) for p in paths])
            rows.append(summarise("bona fide", name, res))
        for name, paths in labelled_attacks().items():
            res = await run_set(client, [(p, (DATA / p).read_bytes()) for p in paths])
            rows.append(summarise("attack", name, res))
        sources = [p for paths in bona.values() for p in paths]
        for name, make in ATTACKS.items():
            items = []
            for i, p in enumerate(sources):
                img = cv2.imread(str(DATA / p), cv2.IMREAD_COLOR)
                items.append((p, jpeg(make(img, seed=i))))
            rows.append(summarise("attack", name, await run_set(client, items)))
        # latency: one live sample image, sequential requests
        sample = (DATA / "spoof/silent_face/image_T1.jpg").read_bytes()
        times = []
        for i in range(args.latency + 1):
            t0 = time.perf_counter()
            await judge(client, sample)
            if i:
                times.append((time.perf_counter() - t0) * 1000)

    print(f"\nMachine: {platform.machine()}, Python {platform.python_version()}\n")
    print("| set | kind | images | judged | not judged (status: n) | error | "
          "errors are |\n|---|---|---|---|---|---|---|")
    for r in rows:
        metric = "BPCER" if r["kind"] == "bona fide" else "APCER"
        unj = ", ".join(f"{s}: {n}" for s, n in r["unjudged"].items()) or "-"
        print(f"| {r['set']} | {r['kind']} | {r['n']} | {r['judged']} | {unj} | "
              f"{metric} {r['error_rate']:.1%} | {', '.join(r['wrong'][:4]) or '-'}"
              f"{' ...' if len(r['wrong']) > 4 else ''} |")
        scores[r["set"]] = r["p"]
    print(f"\nlatency, one 3035 request with a {len(sample) // 1024} KB JPEG: "
          f"p50 {np.percentile(times, 50):.1f} ms, p95 {np.percentile(times, 95):.1f} ms")
    if args.scores:
        Path(args.scores).write_text(json.dumps(scores, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=40)
    parser.add_argument("--scores", help="write the live probabilities per set here")
    parser.add_argument("--url", help="use a running service (key bench:bench-secret)")
    run_with_service(run, parser.parse_args())


if __name__ == "__main__":
    main()
