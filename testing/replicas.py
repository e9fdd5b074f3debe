"""Real processes for replica tests and benchmarks: a redis-server and `python -m service`
replicas on loopback, each on a free port, stopped (never left behind) on exit.

    with redis_server() as redis:                 # redis.url, .stop(), .start()
        with replica_set(redis.url, 2) as (a, b):  # Replica processes, a.url, a.kill()
            ...

Deadlines here are minutes: they only bound a failure (a passing run never waits for
them), and on a 2-core machine shared with busy loops a replica took over three
minutes to import and load its models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = os.environ.get("SERVICE_MODEL_DIR", str(ROOT / ".models"))
REDIS_SERVER = shutil.which("redis-server")
KEY, SECRET = "test-key", "test-secret"
REPLICA_SECRET = "replica-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(n: int) -> int:
    """The first of `n` consecutive free loopback ports (service.launch's replicas)."""
    for _ in range(50):
        first = free_port()
        socks: list[socket.socket] = []
        try:
            for port in range(first, first + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def _wait(check, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None
          ) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.1)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120.0,
                every: float = 0.05) -> None:
    """Wait for a condition (an async check), up to a deadline: never a fixed sleep.
    The deadline only bounds a failure; a passing test waits as long as it takes."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout:.0f} s")
        await asyncio.sleep(every)


def heartbeats(redis: RedisServer, prefix: str = "verify:") -> dict[str, dict]:
    """The live replicas' heartbeats in Redis, by URL."""
    out = {}
    for url in redis.command("SMEMBERS", f"{prefix}replicas").decode().split():
        beat = redis.command("GET", f"{prefix}replica:{url}").strip()
        if beat:
            out[url] = json.loads(beat)
    return out


def slots_taken(redis: RedisServer, prefix: str = "verify:") -> dict[str, int]:
    """Placement slots taken now per live replica URL (its sessions and reservations)."""
    seconds, micros = (int(v) for v in redis.command("TIME").split())
    now_ms = seconds * 1000 + micros // 1000
    return {url: int(redis.command("ZCOUNT", f"{prefix}slots:{beat['id']}", f"({now_ms}",
                                   "+inf"))
            for url, beat in heartbeats(redis, prefix).items()}


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class RedisServer:
    """A redis-server on a loopback port, without persistence: a restart comes back
    empty, as a restarted cache-only Redis does."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="redis-test-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir, "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self.ping, "redis-server", 60, self.proc)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command through redis-cli (raw output), for inspecting what is stored."""
        cli = shutil.which("redis-cli")
        assert cli is not None
        return subprocess.run([cli, "-p", str(self.port), "--raw", *args], check=True,
                              capture_output=True, timeout=30).stdout

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@dataclass
class Replica:
    """One `python -m service` process."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "SERVICE_MODEL_DIR": MODEL_DIR, "SERVICE_PUBLIC_URL": self.url,
               "SERVICE_API_KEYS": f"{KEY}:{SECRET}", **self.env}
        fd, name = tempfile.mkstemp(prefix="replica-", suffix=".log")
        self.log = Path(name)
        with os.fdopen(fd, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service", "--port", str(self.port)], cwd=ROOT,
                env=env, stdout=out, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 600.0) -> None:
        _wait(self.ready, f"replica {self.url}", timeout, self.proc)

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        if self.proc is not None:
            _stop(self.proc, sig, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


def replica_env(redis_url: str, **settings: str) -> dict[str, str]:
    """The environment of a replica sharing `redis_url`; settings as SERVICE_ names
    without the prefix (REPLICAS__CAPACITY="1")."""
    return {"SERVICE_REDIS_URL": redis_url, "SERVICE_REPLICAS__SECRET": REPLICA_SECRET,
            **{f"SERVICE_{k}": str(v) for k, v in settings.items()}}


@contextlib.contextmanager
def replica_set(redis_url: str, n: int, **settings: str) -> Iterator[list[Replica]]:
    """`n` replicas on one Redis, started together (models load in parallel), ready."""
    replicas = [Replica(replica_env(redis_url, **settings)) for _ in range(n)]
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        yield replicas
    finally:
        for replica in replicas:
            replica.stop(signal.SIGKILL)
            if replica.log is not None:
                replica.log.unlink(missing_ok=True)
