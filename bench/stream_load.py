"""Streaming load: N concurrent aiortc peers on loopback against the real service.

Each client streams a blinking person (shared/data blink clip upscaled to 640x480,
looped, 15 fps) as H.264 or VP8 into its own session with blink challenges. Per N:

  analysed fps per stream   frames the service analysed / session seconds
  result latency            client time from the last `challenge_met` to `result`
  service CPU, RSS          of the service process alone (/proc), over the sessions
  floor CPU                 a bare aiortc receiver (bench/_floor_receiver.py) that only
                            decodes and converts the same N streams, measured alone
                            with the same clients: what any analysis pays first

The clients' encoding runs in this process and shares the 2 cores, so only the server
processes' own CPU is reported. `--soak 300` also runs N streams for 5 minutes, session
after session, and samples the service's RSS every 10 s (memory must stay flat).

    .venv/bin/python bench/stream_load.py [--n 1 2 4] [--codec H264] [--soak 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _service import DATA, KEY, SECRET, free_port, service_process  # noqa: E402
from rtc_client import ClipTrack, WhipClient, create_session  # noqa: E402
from videos import decode_all  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def frames_640() -> list[np.ndarray]:
    return [cv2.resize(f, (640, 480), interpolation=cv2.INTER_LINEAR)
            for f in decode_all((DATA / "blink/zju/000001M_FBN.mp4").read_bytes())]


async def one_session(http: aiohttp.ClientSession, url: str, frames: list, codec: str,
                      challenges: str) -> dict:
    status, session = await create_session(http, url, KEY, SECRET, challenges=challenges)
    if status != 201:
        return {"error": session["messageString"]}
    client = WhipClient(session, http, codec=codec)
    await client.connect(ClipTrack(frames, fps=15))
    stamps: dict[str, float] = {}
    try:
        payload = await asyncio.wait_for(client.result, 90)
    finally:
        await client.hang_up()
    stamps["result"] = time.monotonic()
    met = [m for m in client.messages if m["type"] == "challenge_met"]
    detail = payload.get("detail", {})
    met_at = [c["met_at"] for c in detail.get("challenges", [])]
    return {"live": payload["infoList"][0]["veritem"][1]["content"] if payload["infoList"]
            else None, "analysed_fps": detail.get("analysed_fps"),
            "latency_ms": client.latency_ms, "all_met": len(met) == len(met_at) and
            all(m is not None for m in met_at)}


async def floor(frames: list, n: int, codec: str, seconds: float) -> float:
    """CPU (fraction of one core) per stream of the bare receiver."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench/_floor_receiver.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/readyz", timeout=1)
                break
            except OSError:
                await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http:
            clients = [WhipClient({"whip_url": f"{url}/whip", "session_token": "-"}, http,
                                  codec=codec) for _ in range(n)]
            for c in clients:
                await c.connect(ClipTrack(frames, fps=15), data_channel=False)
            await asyncio.sleep(2.0)  # connected and streaming
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            used = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
            for c in clients:
                await c.hang_up()
        return used / n
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def service_run(url: str, pid: int, frames: list, n: int, codec: str) -> dict:
    async with aiohttp.ClientSession() as http:
        c0, t0 = cpu_seconds(pid), time.monotonic()
        results = await asyncio.gather(*(one_session(http, url, frames, codec, "blink,blink,blink")
                                         for _ in range(n)))
        cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    return {"results": results, "cpu": cpu, "rss": rss_mb(pid)}


async def soak(url: str, pid: int, frames: list, n: int, codec: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    samples: list[tuple[float, float]] = []

    async def worker(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < end:
            await one_session(http, url, frames, codec, "blink,blink,blink")

    async def sampler() -> None:
        start = time.monotonic()
        while time.monotonic() < end:
            samples.append((time.monotonic() - start, rss_mb(pid)))
            await asyncio.sleep(10)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(sampler(), *(worker(http) for _ in range(n)))
    print(f"\nsoak: {n} streams for {seconds:.0f} s, service RSS (MB) every 10 s:")
    print(", ".join(f"{mb:.0f}" for _, mb in samples))
    first = np.mean([mb for _, mb in samples[1:4]]) if len(samples) > 4 else samples[0][1]
    last = np.mean([mb for _, mb in samples[-3:]])
    print(f"RSS after warm-up {first:.0f} MB, at the end {last:.0f} MB")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def main_async(args: argparse.Namespace) -> None:
    frames = frames_640()
    env = {"SERVICE_MAX_SESSIONS": str(max(args.n) * 2 + 2),
           "SERVICE_SESSIONS_PER_KEY_PER_MINUTE": "100000",
           "SERVICE_CHALLENGE_TIME_S": "8"}
    rows = []
    with service_process(env) as (url, proc):
        for n in args.n:
            base = await floor(frames, n, args.codec, args.floor_seconds)
            run = await service_run(url, proc.pid, frames, n, args.codec)
            ok = [r for r in run["results"] if "error" not in r]
            rows.append((n, base, run, ok))
        if args.soak:
            await soak(url, proc.pid, frames, max(args.n), args.codec, args.soak)
    print(f"\n{args.codec} 640x480 at 15 fps per stream, analysis at the service's default "
          "rate; CPU as a fraction of one core\n")
    print("| streams | analysed fps per stream (min/median) | last challenge -> result p50 / p95 "
          "| all challenges met | service CPU per stream | floor CPU per stream | service / "
          "floor | service RSS |\n|---|---|---|---|---|---|---|---|")
    for n, base, run, ok in rows:
        fps = [r["analysed_fps"] for r in ok if r["analysed_fps"]]
        lat = [r["latency_ms"] for r in ok if r["latency_ms"] is not None]
        met = sum(r["all_met"] for r in ok)
        per = run["cpu"] / n
        print(f"| {n} | {min(fps):.1f} / {np.median(fps):.1f} | {pct(lat, 50):.0f} / "
              f"{pct(lat, 95):.0f} ms | {met}/{len(run['results'])} | {per:.0%} | {base:.0%} | "
              f"{per / base:.1f}x (+{per - base:.0%}) | {run['rss']:.0f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--codec", default="H264", choices=["H264", "VP8"])
    parser.add_argument("--floor-seconds", type=float, default=8.0)
    parser.add_argument("--soak", type=float, default=0.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
