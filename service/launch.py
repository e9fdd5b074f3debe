"""`python -m service.launch`: one service process, or one replica per core with Redis.

Why: one process cannot keep two cores busy. The model calls release the GIL, but the
event loop (aiortc's packet handling, the per-frame Python of every session) does not,
and it is the bottleneck (issue 13: one process peaked at ~1.1 cores). The supported way
to use every core is what already scales across machines: replicas sharing their state
in Redis (README "Shared state (Redis)"). So with `SERVICE_REDIS_URL` set this starts
`python -m service` once per core on consecutive ports (port, port + 1, ...), each with
its own public URL, its share of the worker threads and the same API keys and replica
secret; without Redis it becomes today's single process (exec, nothing in between).

Signals: SIGTERM and SIGINT are forwarded to every replica (SIGTERM drains each: no new
sessions, running ones finish); the launcher exits when all have, with 0 if all exited
cleanly, else the first failing replica's code. A replica that exits on its own (a
crash, a start-up error) stops the others with SIGTERM, so a supervisor restarting the
launcher restarts the whole set rather than running short of a replica silently.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from service.config import Config, load_config

# How often the launcher looks at its replicas (seconds): only exits are waited for.
POLL_S = 0.2


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica to start: its port and the environment it gets on top of ours."""

    port: int
    env: dict[str, str]


def cores() -> int:
    """Cores this process may run on (a cpuset or taskset counts, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else max(1, os.cpu_count() or 1)


def plan(config: Config, replicas: int) -> list[ReplicaPlan]:
    """The replicas to start on this machine: `replicas` of them with Redis, else one
    with nothing changed. `config.public_url` may hold `{port}` (each replica's own
    port); without it, several replicas get http://host:port each. The worker threads
    (`config.workers`, by default one per core) are shared out among the replicas."""
    if not config.redis_url:
        return [ReplicaPlan(config.port, {})]
    if replicas > 1 and config.public_url and "{port}" not in config.public_url:
        raise ValueError("SERVICE_PUBLIC_URL must contain {port} when several replicas "
                         "run on one machine (each needs its own URL)")
    workers = max(1, config.workers // replicas)
    out = []
    for i in range(replicas):
        port = config.port + i
        url = config.public_url.replace("{port}", str(port)) if config.public_url \
            else f"http://{config.host}:{port}"
        out.append(ReplicaPlan(port, {"SERVICE_PUBLIC_URL": url,
                                      "SERVICE_WORKERS": str(workers)}))
    return out


def shared_secrets(config: Config) -> dict[str, str]:
    """What every replica must share and would otherwise each invent: the API key of
    an unconfigured service and the secret replicas sign their calls with. Generated
    here once (the key's secret printed once, as `python -m service` does)."""
    env: dict[str, str] = {}
    if not config.api_keys:
        secret = secrets.token_hex(16)
        env["SERVICE_API_KEYS"] = f"local:{secret}"
        print(f"no API keys configured (SERVICE_API_KEYS); generated key 'local' "
              f"with secret {secret}", file=sys.stderr, flush=True)
    if not config.replicas.secret:
        # only these replicas know it: replicas on other machines need it set
        env["SERVICE_REPLICAS__SECRET"] = secrets.token_hex(32)
    return env


def run(plans: list[ReplicaPlan], host: str, common: dict[str, str]) -> int:
    """Start the replicas, forward SIGTERM/SIGINT to them, wait for all; the exit code."""
    procs: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []  # the signal being forwarded, once one came

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in plans:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "service", "--host", host, "--port", str(p.port)],
            env={**os.environ, **common, **p.env}))
        print(f"replica {len(procs)}/{len(plans)}: pid {procs[-1].pid}, port {p.port}",
              file=sys.stderr, flush=True)
    if stopping:  # a signal came while starting: the replicas started after it get it too
        forward(stopping[-1], None)
    first_failure: int | None = None
    while True:
        codes = [proc.poll() for proc in procs]
        for proc, code in zip(procs, codes):
            if code is not None and code != 0 and first_failure is None:
                first_failure = code
            if code is not None and not stopping:
                # a replica ended by itself: stop (drain) the rest as well
                print(f"replica pid {proc.pid} exited with {code}; stopping the others",
                      file=sys.stderr, flush=True)
                forward(signal.SIGTERM, None)
        if all(code is not None for code in codes):
            break
        time.sleep(POLL_S)
    if first_failure is None:
        return 0
    # a replica ended by a signal (negative code) exits as a shell reports it: 128 + n
    return first_failure if first_failure > 0 else 128 - first_failure


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", help="bind address (env SERVICE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="first port (env SERVICE_PORT, default 8080)")
    parser.add_argument("--replicas", type=int, default=0,
                        help="replicas with Redis (default: one per core)")
    args = parser.parse_args()
    try:
        config = load_config(host=args.host, port=args.port)
        plans = plan(config, args.replicas if args.replicas > 0 else cores())
    except ValueError as exc:
        sys.exit(f"cannot start: {exc}")
    if len(plans) == 1 and not plans[0].env:
        argv = [sys.executable, "-m", "service", "--host", config.host,
                "--port", str(config.port)]
        os.execv(sys.executable, argv)  # today's single process, nothing in between
    sys.exit(run(plans, config.host, shared_secrets(config)))


if __name__ == "__main__":
    main()
