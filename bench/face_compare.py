"""Face comparison (typeId 21): accuracy on the labelled pairs, latency and throughput.

Runs the real service in its own process on loopback and talks HTTP to it, so the
numbers include decoding, detection, alignment, embedding and the envelope.
`--calibrate` also fits the score mapping (Platt scaling) and prints the config values.
`--throughput RUNS` measures only throughput, RUNS times (the machine is shared and
noisy: one run says little), with `--clients` concurrent clients, and also reports the
service process tree's CPU seconds per request.

    .venv/bin/python bench/face_compare.py [--calibrate] [--requests 60]
    .venv/bin/python bench/face_compare.py --throughput 5 [--clients 4] [--requests 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import time
import urllib.parse
from pathlib import Path

import aiohttp
import numpy as np

from testing.client import VerifyClient, signed_fields
from testing.service_process import DATA, KEY, SECRET, run_with_service, service_process

# Two ~200 KB JPEGs (184 KB and 191 KB), as the vendor document suggests for uploads.
LATENCY_PAIR = ("faces/face_recognition/obama__obama2.jpg",
                "faces/face_recognition/alex_lacamoire__img1.jpg")


def platt_fit(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt (1999) sigmoid fit with his smoothed targets, so separable data stays finite."""
    n_pos, n_neg = labels.sum(), (1 - labels).sum()
    target = np.where(labels == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 1.0, 0.0
    for _ in range(200):  # Newton's method on the cross-entropy
        p = 1 / (1 + np.exp(-(a * scores + b)))
        g = np.array([np.sum((p - target) * scores), np.sum(p - target)])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.sum(w * scores**2), np.sum(w * scores)],
                      [np.sum(w * scores), np.sum(w)]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(a), float(b)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def accuracy(client: VerifyClient) -> list[dict]:
    labels = json.loads((DATA / "labels.json").read_text())
    cache: dict[str, bytes] = {}

    def read(path: str) -> bytes:
        if path not in cache:
            cache[path] = (DATA / path).read_bytes()
        return cache[path]

    results = []
    sem = asyncio.Semaphore(2)

    async def one(pair: dict) -> None:
        async with sem:
            _, body = await client.verify(21, img1=read(pair["a"]), img2=read(pair["b"]))
        items = body["infoList"][0]["veritem"] if body["infoList"] else []
        results.append({
            "pair": pair, "status": body["messageString"]["status"],
            "yes": bool(items) and items[0]["desc"] == "Decision result:yes",
            "value": int(items[1]["desc"].split(":")[1]) if items else None,
            "similarity": body.get("detail", {}).get("similarity"),
        })

    await asyncio.gather(*(one(p) for p in labels["pairs"]))
    return results


class PreparedPair:
    """The latency pair with its images base64- and URL-encoded once.

    Encoding 400 KB of form data costs the *client* ~20 ms of Python per request on this
    machine; a benchmark of the service should not charge that to the service.
    """

    def __init__(self) -> None:
        a, b = ((DATA / p).read_bytes() for p in LATENCY_PAIR)
        self.raw = (a, b)
        self.quoted = "&" + urllib.parse.urlencode(
            {"img1": base64.b64encode(a).decode(), "img2": base64.b64encode(b).decode()})

    def form_body(self) -> bytes:
        fields = {**signed_fields(KEY, SECRET), "typeId": "21"}
        return (urllib.parse.urlencode(fields) + self.quoted).encode()


async def post_form(session: aiohttp.ClientSession, url: str, pair: PreparedPair) -> int:
    async with session.post(f"{url}/api/verify", data=pair.form_body(), headers={
            "Content-Type": "application/x-www-form-urlencoded"}) as resp:
        body = await resp.json()
        assert body["messageString"]["status"] == "2000", body
        return resp.status


async def latency(client: VerifyClient, pair: PreparedPair, n: int,
                  multipart: bool) -> list[float]:
    times = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        if multipart:
            status, _ = await client.verify(21, multipart=True, img1=pair.raw[0],
                                            img2=pair.raw[1])
        else:
            status = await post_form(client.session, client.base_url, pair)
        if i:  # the first request warms the connection
            times.append((time.perf_counter() - t0) * 1000)
        assert status == 200
    return times


async def throughput(client: VerifyClient, pair: PreparedPair, clients: int,
                     per_client: int) -> float:
    async def worker() -> None:
        for _ in range(per_client):
            await post_form(client.session, client.base_url, pair)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return clients * per_client / (time.perf_counter() - t0)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and its children still running (the
    decoder workers), from /proc; 0.0 where /proc is not there."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        pids += [int(c) for c in children]
    return total


async def throughput_runs(args: argparse.Namespace, url: str, pid: int | None) -> None:
    async with aiohttp.ClientSession() as session:
        client = VerifyClient(url, KEY, SECRET, session)
        pair = PreparedPair()
        await throughput(client, pair, args.clients, 2)  # warm: connections, model threads
        per_client = args.requests // args.clients + 1
        rows = []
        for _ in range(args.throughput):
            cpu0, own0 = tree_cpu_s(pid) if pid else 0.0, time.process_time()
            rps = await throughput(client, pair, args.clients, per_client)
            n = args.clients * per_client
            cpu = (tree_cpu_s(pid) - cpu0) / n if pid else 0.0
            rows.append((rps, cpu, (time.process_time() - own0) / n))
    print(f"\nMachine: {platform.machine()}, {platform.python_version()}, "
          f"{os.cpu_count()} cores; load average before: "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print(f"| run | requests/s, {args.clients} concurrent clients | service CPU per request "
          "(process tree) | client CPU per request |")
    print("|---|---|---|---|")
    for i, (rps, cpu, own) in enumerate(rows, 1):
        service = f"{cpu * 1000:.0f} ms" if pid else "-"
        print(f"| {i} | {rps:.1f} | {service} | {own * 1000:.0f} ms |")
    values = sorted(r for r, _, _ in rows)
    cpus = sorted(c for _, c, _ in rows)
    print(f"| min / median / max | {values[0]:.1f} / {statistics.median(values):.1f} / "
          f"{values[-1]:.1f} | {statistics.median(cpus) * 1000:.0f} ms (median) | |")


async def run(args: argparse.Namespace, url: str) -> None:
    async with aiohttp.ClientSession() as session:
        client = VerifyClient(url, KEY, SECRET, session)
        results = await accuracy(client)
        pair = PreparedPair()
        lat = await latency(client, pair, args.requests, multipart=False)
        lat_mp = await latency(client, pair, args.requests, multipart=True)
        rps = await throughput(client, pair, 4, args.requests // 4 + 1)

    ok = [r for r in results if r["status"] == "2000"]
    same = [r for r in ok if r["pair"]["same"]]
    diff = [r for r in ok if not r["pair"]["same"]]
    correct = sum(r["yes"] == r["pair"]["same"] for r in ok)
    far = sum(r["yes"] for r in diff) / max(1, len(diff))
    frr = sum(not r["yes"] for r in same) / max(1, len(same))
    sims_same = [r["similarity"] for r in same]
    sims_diff = [r["similarity"] for r in diff]
    print(f"\nMachine: {platform.machine()}, {platform.python_version()}, "
          f"{os.cpu_count()} cores\n")
    print("| metric | value |\n|---|---|")
    print(f"| labelled pairs answered | {len(ok)}/{len(results)} "
          f"({len(same)} same, {len(diff)} different) |")
    print(f"| errors | {[r['status'] for r in results if r['status'] != '2000']} |")
    print(f"| accuracy | {correct / max(1, len(ok)):.2%} ({correct}/{len(ok)}) |")
    print(f"| FAR (different people said yes) | {far:.2%} |")
    print(f"| FRR (same person said no) | {frr:.2%} |")
    print(f"| cosine, same person: min / median | {min(sims_same):.3f} / "
          f"{statistics.median(sims_same):.3f} |")
    print(f"| cosine, different people: max / median | {max(sims_diff):.3f} / "
          f"{statistics.median(sims_diff):.3f} |")
    print(f"| latency, one request, 2 x ~190 KB JPEG as base64 form: p50 / p95 | "
          f"{percentile(lat, 50):.1f} ms / {percentile(lat, 95):.1f} ms |")
    print(f"| latency, the same as multipart files: p50 / p95 | "
          f"{percentile(lat_mp, 50):.1f} ms / {percentile(lat_mp, 95):.1f} ms |")
    print(f"| throughput, 4 concurrent clients | {rps:.1f} requests/s |")
    if args.calibrate:
        sims = np.array([r["similarity"] for r in ok])
        labels = np.array([1.0 if r["pair"]["same"] else 0.0 for r in ok])
        a, b = platt_fit(sims, labels)
        thr = -b / a
        print(f"\nPlatt fit: CompareSettings.slope = {a:.3f}, intercept = {b:.3f} "
              f"-> threshold cosine {thr:.4f}")
        print(f"at that threshold: FAR {np.mean(sims[labels == 0] >= thr):.2%}, "
              f"FRR {np.mean(sims[labels == 1] < thr):.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--throughput", type=int, metavar="RUNS",
                        help="only measure throughput, this many times")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--url", help="use a running service (key bench:bench-secret)")
    args = parser.parse_args()
    if args.throughput:
        if args.url:
            asyncio.run(throughput_runs(args, args.url, None))
        else:
            with service_process() as (url, proc):
                asyncio.run(throughput_runs(args, url, proc.pid))
        return
    run_with_service(run, args)


if __name__ == "__main__":
    main()
