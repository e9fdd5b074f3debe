"""Streaming load: N concurrent WHIP sessions against the real service, nearly free clients.

The clients run in their own process(es) (bench/_load_clients.py): the clip is encoded
once and every peer relays the same H.264 (or VP8) packets in real time, so the load
generator costs a few percent of a core and the service is what is measured. Sessions
have no challenges (`challenges=0`: a relayed clip cannot follow prompts); the service
watches each face for `--observation` seconds, then decides. Per N, in the same run:

  analysed fps per stream    the service's own `analysed_fps` of each session
  observation end -> result  client time from the end of the watch to the `result`
                             message (noticing the end, the decision: best frames,
                             silent liveness; the message), p50 / p95, as two bounds.
                             The service counts the observation from its first
                             analysed frame with a face, which it sampled after our
                             first packet left (upper bound: first packet + observation)
                             and before its progress message about that frame reached
                             us (lower bound: that message + observation); the stderr
                             line adds the decision alone ('deciding' message -> result)
  service CPU per stream     service process(es) CPU over the steady window (every
                             stream between its first face and its observation end),
                             divided by N; a fraction of one core
  floor per stream           bench/_floor_receiver.py (a bare aiortc receiver that only
                             decodes and converts to BGR) fed by the same generator with
                             N streams, measured alone
  load generator CPU         the client process(es), same steady window, all N streams
  RSS                        the service process(es), the largest sample of the run

`--replicas R` starts a redis-server and R service processes sharing it (Redis-backed
session routing); the clients create sessions round-robin across them and CPU and RSS
are summed. `--launch` starts them the way `make run` does with Redis configured:
`python -m service.launch`, one replica per core with its share of the worker threads.
`--compare` runs both side by side in the same minutes: one plain process and the
launcher with Redis (every session created through its first replica, as through one
entry point: placement spreads them), in turn for each N, and prints their analysed
fps per stream and where the sessions went. `--soak 300` then runs the largest N
session after session for 300 s and samples the service's RSS every 10 s (memory must
stay flat).

    .venv/bin/python bench/stream_load.py [--n 4 8 12 16] [--codec H264]
        [--replicas 2 | --launch | --compare]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from testing.service_process import KEY, SECRET, free_port, service_process

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
CLIENTS = ROOT / "bench" / "_load_clients.py"


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, its threads included (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class CpuLog:
    """Cumulative CPU seconds of groups of processes, sampled every `period`, so the CPU
    over any window of the run can be read afterwards."""

    def __init__(self, period: float = 0.25) -> None:
        self.period = period
        self.samples: list[tuple[float, dict[str, float], dict[str, float]]] = []
        self.groups: dict[str, list[int]] = {}

    def sample(self) -> None:
        cpu = {g: sum(cpu_seconds(p) for p in pids) for g, pids in self.groups.items()}
        rss = {g: sum(rss_mb(p) for p in pids) for g, pids in self.groups.items()}
        self.samples.append((time.monotonic(), cpu, rss))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.period)

    def cpu_at(self, group: str, t: float) -> float:
        times = [s[0] for s in self.samples]
        values = [s[1].get(group, 0.0) for s in self.samples]
        return float(np.interp(t, times, values))

    def usage(self, group: str, start: float, end: float) -> float:
        """Cores used on average by `group` between `start` and `end`."""
        if end <= start:
            return float("nan")
        return (self.cpu_at(group, end) - self.cpu_at(group, start)) / (end - start)

    def peak_rss(self, group: str, start: float, end: float) -> float:
        return max((s[2].get(group, 0.0) for s in self.samples if start <= s[0] <= end),
                   default=0.0)


async def run_clients(log: CpuLog, urls: list[str], n: int, procs: int,
                      extra: list[str]) -> tuple[list[dict[str, Any]], float]:
    """Start the load generator (N peers over `procs` processes) and wait for it; its
    results merged, and when its packets were ready (after the one encode)."""
    counts = [n // procs + (i < n % procs) for i in range(procs)]
    children = []
    for i, count in enumerate(c for c in counts if c):
        children.append(await asyncio.create_subprocess_exec(
            sys.executable, str(CLIENTS), "--url", *urls, "--n", str(count), *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT))
    log.groups["clients"] = [c.pid for c in children]
    outputs = await asyncio.gather(*(c.communicate() for c in children))
    log.groups["clients"] = []
    merged: dict[str, Any] = {"sessions": [], "floor": []}
    ready = 0.0
    for out, _ in outputs:
        lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        if len(lines) < 2:
            raise RuntimeError("the load generator failed (run bench/_load_clients.py "
                               "by hand to see why)")
        ready = max(ready, lines[0]["ready"])
        merged["sessions"] += lines[-1].get("sessions", [])
        if "floor" in lines[-1]:
            merged["floor"].append(lines[-1]["floor"])
    return merged["sessions"] or merged["floor"], ready


@contextlib.contextmanager
def floor_receiver() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench/_floor_receiver.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def services(args: argparse.Namespace, env: dict[str, str]
             ) -> Iterator[tuple[list[str], list[int], tuple[str, str]]]:
    """The service: one process, `--replicas` processes on one redis-server, or those the
    launcher starts (`--launch`)."""
    if args.launch:
        with launched(env) as started:
            yield started
        return
    if args.replicas <= 1:
        with service_process(env) as (url, proc):
            yield [url], [proc.pid], (KEY, SECRET)
        return
    from testing import replicas  # testing/replicas.py: redis-server and replica processes
    settings = {k.removeprefix("SERVICE_"): v for k, v in env.items()}
    with replicas.redis_server() as redis, \
            replicas.replica_set(redis.url, args.replicas, **settings) as group:
        yield ([r.url for r in group], [r.proc.pid for r in group if r.proc],
               (replicas.KEY, replicas.SECRET))


@contextlib.contextmanager
def launched(env: dict[str, str]) -> Iterator[tuple[list[str], list[int], tuple[str, str]]]:
    """`python -m service.launch` with a redis-server: one replica per core."""
    from service.launch import cores
    from testing import replicas  # testing/replicas.py: redis-server, consecutive free ports
    n = cores()
    with replicas.redis_server() as redis:
        port = replicas.free_ports(n)
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.launch", "--port", str(port)], cwd=ROOT,
            env={**os.environ, **env, "SERVICE_REDIS_URL": redis.url,
                 "SERVICE_API_KEYS": f"{KEY}:{SECRET}", "SERVICE_MODEL_DIR":
                 os.environ.get("SERVICE_MODEL_DIR", str(ROOT / ".models"))},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        urls = [f"http://127.0.0.1:{port + i}" for i in range(n)]
        try:
            for url in urls:
                replicas.Replica({}, int(url.rsplit(":", 1)[1]), proc).wait_ready()
            deadline = time.monotonic() + 30  # every replica knows the others
            while set(replicas.heartbeats(redis)) != set(urls) and time.monotonic() < deadline:
                time.sleep(0.1)
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            yield urls, [int(pid) for pid in children], (KEY, SECRET)
        finally:
            proc.terminate()  # forwarded: each replica drains and exits
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def measure_floor(log: CpuLog, url: str, pid: int, n: int, args: argparse.Namespace
                        ) -> tuple[float, float]:
    """(floor CPU per stream, load generator CPU) with N streams into the bare receiver."""
    log.groups["floor"] = [pid]
    runs, _ = await run_clients(log, [url], n, args.client_procs, [
        "--mode", "floor", "--seconds", str(args.floor_seconds), "--codec", args.codec])
    start = max(r["streaming"] for r in runs) + 2.0  # every peer connected and streaming
    end = min(r["ended"] for r in runs)
    return log.usage("floor", start, end) / n, log.usage("clients", start, end)


async def measure_service(log: CpuLog, urls: list[str], n: int, args: argparse.Namespace,
                          key: tuple[str, str], until: float = 0.0) -> dict[str, Any]:
    runs, ready = await run_clients(log, urls, n, args.client_procs, [
        "--mode", "session", "--observation", str(args.observation), "--codec", args.codec,
        "--key", key[0], "--secret", key[1], "--until", str(until)])
    ok = [r for r in runs if "error" not in r]
    watched = [r for r in ok if r["face_at"] is not None]
    first_round = sorted(watched, key=lambda r: r["started"])[:n]
    start = max((r["face_at"] for r in first_round), default=0.0)
    end = min((r["observation_end"] for r in first_round), default=0.0)
    return {
        "runs": runs, "ok": ok,
        "fps": [r["analysed_fps"] for r in ok if r["analysed_fps"] is not None],
        "latency": [1000 * (r["result_at"] - r["observation_end"]) for r in watched
                    if r["ended_by"] == "observation time done"],
        "latency_low": [1000 * (r["result_at"] - r["observation_end_late"]) for r in watched
                        if r["ended_by"] == "observation time done"],
        "deciding": [1000 * (r["result_at"] - r["deciding_at"]) for r in watched
                     if r["deciding_at"] is not None],
        "live": sum(r["live"] == "Living body" for r in ok),
        "cpu": log.usage("service", start, end) / n,
        "clients": log.usage("clients", start, end),
        "window": end - start,
        "rss": log.peak_rss("service", ready, time.monotonic()),
    }


async def compare(args: argparse.Namespace, env: dict[str, str]) -> None:
    """One plain process and the launcher's replicas, side by side, in turn per N."""
    log = CpuLog()
    sampler = asyncio.create_task(log.run())
    rows = []
    try:
        with services(argparse.Namespace(launch=False, replicas=1), env) as single, \
                launched(env) as group:
            for n in args.n:
                row = []
                for urls, pids, key in (single, (group[0][:1], group[1], group[2])):
                    log.groups["service"] = pids
                    run = await measure_service(log, urls, n, args, key)
                    owners = [r["owner"] for r in run["ok"]]
                    row.append((run, sorted((owners.count(u) for u in set(owners)),
                                            reverse=True)))
                rows.append((n, row))
                print(f"N={n} done", file=sys.stderr, flush=True)
    finally:
        sampler.cancel()
    print(f"\n{args.codec} 640x480 at 15 fps per stream (relayed), no challenges, "
          f"{args.observation:g} s observation; one process vs `python -m service.launch` "
          f"with Redis ({len(group[0])} replicas), every session created through the "
          f"first replica; measured in turn in the same minutes\n")
    print("| streams | one process: analysed fps (min / median) | launcher: analysed fps "
          "(min / median) | launcher: sessions per replica | decided (one / launcher) |")
    print("|---|---|---|---|---|")
    for n, ((one, _), (many, split)) in rows:
        print(f"| {n} | {min(one['fps'], default=0):.1f} / {pct(one['fps'], 50):.1f} | "
              f"{min(many['fps'], default=0):.1f} / {pct(many['fps'], 50):.1f} | "
              f"{'/'.join(map(str, split))} | {len(one['ok'])}/{len(one['runs'])}, "
              f"{len(many['ok'])}/{len(many['runs'])} |")


async def main_async(args: argparse.Namespace) -> None:
    env = {"SERVICE_SESSIONS__MAX_ACTIVE": str(max(args.n) * 2 + 2),
           "SERVICE_SESSIONS__PER_KEY_PER_MINUTE": "100000",
           "SERVICE_SESSIONS__OBSERVATION_S": str(args.observation)}
    if args.compare:
        await compare(args, env)
        return
    log = CpuLog()
    sampler = asyncio.create_task(log.run())
    rows = []
    try:
        with services(args, env) as (urls, pids, key), floor_receiver() as (floor_url, fpid):
            log.groups["service"] = pids
            for n in args.n:
                base, gen_floor = await measure_floor(log, floor_url, fpid, n, args)
                run = await measure_service(log, urls, n, args, key)
                rows.append((n, base, gen_floor, run))
                print(f"N={n}: {len(run['ok'])}/{len(run['runs'])} sessions decided, "
                      f"steady window {run['window']:.1f} s, 'deciding' -> result p50 / p95 "
                      f"{pct(run['deciding'], 50):.0f} / {pct(run['deciding'], 95):.0f} ms",
                      file=sys.stderr, flush=True)
            if args.soak:
                soak = await measure_service(log, urls, max(args.n), args, key,
                                             time.monotonic() + args.soak)
    finally:
        sampler.cancel()
    procs = "one replica per core (service.launch)" if args.launch \
        else f"{args.replicas} service process(es)"
    print(f"\n{args.codec} 640x480 at 15 fps per stream (the clip encoded once, relayed), "
          f"{procs}, analysis at the service's default rate, "
          f"no challenges, {args.observation:g} s observation; CPU as a fraction of one core\n")
    print("| streams | analysed fps per stream (min / median) | observation end -> result "
          "p50 / p95 | sessions decided (Living body) | service CPU per stream | floor per "
          "stream | service / floor | load generator CPU (all streams) | service RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, base, gen_floor, run in rows:
        fps, lat, low = run["fps"], run["latency"], run["latency_low"]
        print(f"| {n} | {min(fps, default=0):.1f} / {pct(fps, 50):.1f} | "
              f"{pct(low, 50):.0f}-{pct(lat, 50):.0f} / {pct(low, 95):.0f}-{pct(lat, 95):.0f}"
              f" ms | {len(run['ok'])}/{len(run['runs'])}"
              f" ({run['live']}) | {run['cpu']:.1%} | {base:.1%} | {run['cpu'] / base:.2f}x | "
              f"{run['clients']:.1%} (floor run {gen_floor:.1%}) | {run['rss']:.0f} MB |")
    errors = sorted({r["error"] for _, _, _, run in rows for r in run["runs"] if "error" in r})
    if errors:
        print(f"\nerrors: {errors}")
    if args.soak:
        report_soak(log, soak, args)


def report_soak(log: CpuLog, soak: dict[str, Any], args: argparse.Namespace) -> None:
    start = min(r["started"] for r in soak["runs"])
    samples = [(t - start, rss["service"]) for t, _, rss in log.samples if t >= start]
    every = [mb for i, (t, mb) in enumerate(samples) if i % max(1, round(10 / log.period)) == 0]
    fps = soak["fps"]
    print(f"\nsoak: {max(args.n)} streams for {args.soak:.0f} s, {len(soak['ok'])}/"
          f"{len(soak['runs'])} sessions decided, analysed fps min / median "
          f"{min(fps, default=0):.1f} / {pct(fps, 50):.1f}; service RSS (MB) every 10 s:")
    print(", ".join(f"{mb:.0f}" for mb in every))
    if len(every) > 6:
        print(f"RSS after warm-up (mean of samples 2-4) {np.mean(every[1:4]):.0f} MB, "
              f"at the end (last 3) {np.mean(every[-3:]):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4, 8, 12, 16])
    parser.add_argument("--codec", default="H264", choices=["H264", "VP8"])
    parser.add_argument("--observation", type=float, default=12.0,
                        help="seconds each session watches the face")
    parser.add_argument("--floor-seconds", type=float, default=10.0)
    parser.add_argument("--client-procs", type=int, default=1,
                        help="processes the load generator's peers are spread over")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--launch", action="store_true",
                        help="the replicas python -m service.launch starts (Redis)")
    parser.add_argument("--compare", action="store_true",
                        help="one process and the launcher with Redis, side by side")
    parser.add_argument("--soak", type=float, default=0.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
