"""Start the real service in its own process for benchmarks (loopback only).

`python -m service` as an operator runs it, with the benches' API key and the models
of SERVICE_MODEL_DIR, on a free port; the attack scenarios take its key and data
directory as their defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DATA = SHARED / "data"
KEY, SECRET = "bench", "bench-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_service(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    with service_process(extra_env) as (url, _):
        yield url


@contextlib.contextmanager
def service_process(extra_env: dict[str, str] | None = None
                    ) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    env = {**os.environ, "SERVICE_API_KEYS": f"{KEY}:{SECRET}",
           "SERVICE_MODEL_DIR": os.environ.get("SERVICE_MODEL_DIR", str(ROOT / ".models")),
           **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("service did not become ready")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()  # SIGTERM drains: sessions still running may keep it up
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_with_service(run: Callable[[argparse.Namespace, str], Awaitable[None]],
                     args: argparse.Namespace) -> None:
    """Run `run(args, url)` against `args.url` if given, else a fresh service process."""
    if getattr(args, "url", None):
        asyncio.run(run(args, args.url))
        return
    with running_service() as url:
        asyncio.run(run(args, url))
