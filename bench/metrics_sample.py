"""Print a sample Prometheus scrape of the real service after a small real workload.

Starts `python -m service` (loopback), sends vendor API calls of both typeIds (two of
them failing), streams one session from a real aiortc client (a ZJU blink clip, no
challenges), then prints GET /metrics: the README's "Monitoring" sample comes from here.
Histogram buckets are left out unless --buckets.

    .venv/bin/python bench/metrics_sample.py [--buckets] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import suppress

import aiohttp
from verification_client import AsyncClient, AuthenticationError, BadMediaError

from testing.rtc_client import ClipTrack, WhipClient
from testing.service_process import DATA, KEY, SECRET, run_with_service
from testing.videos import decode_all

CLIP = "blink/zju/000001M_FBN.mp4"


async def workload(args: argparse.Namespace, url: str) -> None:
    async with aiohttp.ClientSession() as http:
        client = AsyncClient(url, KEY, SECRET, http=http)
        face = (DATA / "faces/deepface/img3.jpg").read_bytes()
        await client.compare_faces(face, DATA / "faces/deepface/img12.jpg")
        await client.check_liveness(face)
        await client.check_liveness(DATA / CLIP)
        with suppress(BadMediaError):
            await client.check_liveness(b"not an image")  # 4002
        with suppress(AuthenticationError):
            await AsyncClient(url, KEY, "wrong", http=http).compare_faces(face, face)  # 4010
        session = await client.create_session(challenges=0)
        whip = WhipClient(session.for_app(), http)
        await whip.connect(ClipTrack(decode_all((DATA / CLIP).read_bytes()), fps=15))
        try:
            await asyncio.wait_for(whip.result, 60)
        finally:
            await whip.hang_up()
        await asyncio.sleep(1.5)  # the decided peer closes after its hang-up delay
        async with http.get(f"{url}/metrics") as resp:
            text = await resp.text()
    for line in text.splitlines():
        if args.buckets or "_bucket{" not in line:
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", action="store_true", help="print histogram buckets")
    parser.add_argument("--url", help="a running service (its key must be bench:bench-secret)")
    run_with_service(workload, parser.parse_args())


if __name__ == "__main__":
    main()
