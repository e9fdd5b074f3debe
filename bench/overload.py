"""Overload: many valid uploads at once. Are the excess refused at once, or do they queue?

Sends N concurrent 3035 video uploads (a real clip from shared/data), then N concurrent
typeId 21 comparisons, to the real service in its own process, and prints per answer
status how many there were and how long they took. With admission by expected wait
(service/vision/admission.py) the analysed ones finish within a few seconds of their
own cost and the rest answer 4290 quickly, instead of everyone waiting in one queue.

    .venv/bin/python bench/overload.py [--uploads 50] [--url http://127.0.0.1:8080]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
from collections import defaultdict

import aiohttp
import numpy as np
from verification_client import ApiError, AsyncClient

from testing.service_process import DATA, KEY, SECRET, run_with_service

CLIP = "blink/zju/000001M_FBN.mp4"
PAIR = ("faces/face_recognition/obama__obama2.jpg",
        "faces/face_recognition/alex_lacamoire__img1.jpg")


async def burst(client: AsyncClient, n: int, type_id: int, media: dict[str, bytes]
                ) -> dict[str, list[float]]:
    async def one() -> tuple[str, float]:
        started = time.perf_counter()
        try:
            status = (await client.verify(type_id, **media))["messageString"]["status"]
        except ApiError as refused:  # 4290 busy, above all
            status = refused.envelope_status
        return status, time.perf_counter() - started

    by_status: dict[str, list[float]] = defaultdict(list)
    for status, seconds in await asyncio.gather(*(one() for _ in range(n))):
        by_status[status].append(seconds)
    return by_status


def table(title: str, by_status: dict[str, list[float]]) -> None:
    print(f"\n{title}\n")
    print("| status | answers | latency p50 | latency max |")
    print("|---|---|---|---|")
    for status, times in sorted(by_status.items()):
        print(f"| {status} | {len(times)} | {np.percentile(times, 50):.2f} s | "
              f"{max(times):.2f} s |")


async def run(args: argparse.Namespace, url: str) -> None:
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        client = AsyncClient(url, KEY, SECRET, http=http, timeout_s=300)
        clip = (DATA / CLIP).read_bytes()
        first, second = ((DATA / p).read_bytes() for p in PAIR)
        await client.verify(3035, file=clip)  # warm-up, and a first timing
        print(f"## Overload ({platform.machine()}, {args.uploads} concurrent requests each)")
        table(f"3035 video uploads ({len(clip) // 1024} KB clip)",
              await burst(client, args.uploads, 3035, {"file": clip}))
        table("typeId 21 comparisons (two ~190 KB JPEGs)",
              await burst(client, args.uploads, 21, {"img1": first, "img2": second}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--url", help="a running service (default: start one)")
    run_with_service(run, parser.parse_args())


if __name__ == "__main__":
    main()
