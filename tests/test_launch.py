"""`python -m service.launch`: one replica per core with Redis, today's process without.

The plan (ports, URLs, worker threads) is checked as a pure function; the launcher itself
runs for real: a redis-server on a loopback port, the launcher starting two
`python -m service` replicas, a burst of 16 sessions sent at once to the first one
split 8/8 between both, SIGTERM draining both, and the exit codes it returns. Every
wait is for a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from service.config import load_config
from service.launch import plan
from testing.replicas import (
    KEY,
    MODEL_DIR,
    REDIS_SERVER,
    ROOT,
    SECRET,
    free_ports,
    heartbeats,
    redis_server,
    slots_taken,
)
from testing.rtc_client import create_session


def test_without_redis_the_plan_is_todays_single_process():
    config = load_config({}, port=9000)
    assert plan(config, 4) == [plan(config, 1)[0]]
    assert plan(config, 4)[0].port == 9000 and plan(config, 4)[0].env == {}


def test_with_redis_one_replica_per_core_on_consecutive_ports_with_their_own_urls():
    config = load_config({"SERVICE_REDIS_URL": "redis://127.0.0.1:6379/0",
                          "SERVICE_WORKERS": "4"}, host="0.0.0.0", port=9000)
    replicas = plan(config, 2)
    assert [r.port for r in replicas] == [9000, 9001]
    assert [r.env["SERVICE_PUBLIC_URL"] for r in replicas] == [
        "http://0.0.0.0:9000", "http://0.0.0.0:9001"]
    assert [r.env["SERVICE_WORKERS"] for r in replicas] == ["2", "2"]  # shared out
    templated = load_config({"SERVICE_REDIS_URL": "redis://r/0",
                             "SERVICE_PUBLIC_URL": "https://a.example/{port}/"}, port=7000)
    assert [r.env["SERVICE_PUBLIC_URL"] for r in plan(templated, 3)] == [
        "https://a.example/7000/", "https://a.example/7001/", "https://a.example/7002/"]
    assert [r.env["SERVICE_WORKERS"] for r in plan(templated, 3)] == ["1"] * 3  # at least 1
    one_url = load_config({"SERVICE_REDIS_URL": "redis://r/0",
                           "SERVICE_PUBLIC_URL": "https://a.example"})
    with pytest.raises(ValueError, match="{port}"):
        plan(one_url, 2)
    assert plan(one_url, 1)[0].env["SERVICE_PUBLIC_URL"] == "https://a.example"


# --- the launcher, for real ----------------------------------------------------------


def ready(url: str) -> int | None:
    """/readyz status, None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def launch(port: int, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.launch", "--port", str(port), *args], cwd=ROOT,
            env={**os.environ, "SERVICE_MODEL_DIR": MODEL_DIR, **env},
            stdout=out, stderr=subprocess.STDOUT)


async def poll(check, timeout_s: float, every_s: float = 0.1) -> bool:
    """Whether `check` came true before the deadline (a condition, never a sleep)."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)
    return True


def exit_code(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """The process's exit code, or None if it is still running after `timeout_s`."""
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


BURST = 16


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed "
                    "(scripts/install-system-packages.sh)")
async def test_a_burst_through_one_replica_splits_evenly_and_sigterm_drains_both():
    port = free_ports(2)
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    log = Path(tempfile.mkstemp(prefix="launch-", suffix=".log")[1])
    with redis_server() as redis:
        # no replica secret given: the launcher makes one for its replicas
        env = {"SERVICE_REDIS_URL": redis.url, "SERVICE_API_KEYS": f"{KEY}:{SECRET}",
               "SERVICE_REPLICAS__CAPACITY": str(BURST),
               "SERVICE_REPLICAS__HEARTBEAT_INTERVAL_S": "0.5",
               "SERVICE_REPLICAS__DRAIN_GRACE_S": "60"}
        proc = launch(port, env, log, "--replicas", "2")
        try:
            assert await poll(lambda: all(ready(u) == 200 for u in urls), 600), log.read_text()
            # both heartbeats are in Redis: each replica knows the other
            assert await poll(lambda: set(heartbeats(redis)) == set(urls), 120)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
                # all at once to the first replica, as a load generator sends them
                answers = await asyncio.gather(*(
                    create_session(http, urls[0], KEY, SECRET, challenges=0)
                    for _ in range(BURST)))
                assert [status for status, _ in answers] == [201] * BURST, answers
                sessions = [body for _, body in answers]
                owners = [s["whip_url"].split("/v1/")[0] for s in sessions]
                # each placement saw the slots the ones before it took: 8 and 8
                assert abs(owners.count(urls[0]) - owners.count(urls[1])) <= 1, owners
                assert sorted(slots_taken(redis).values()) == sorted(
                    owners.count(u) for u in urls)
                proc.send_signal(signal.SIGTERM)
                # both drain: not ready, still serving their running sessions
                assert await poll(lambda: all(ready(u) == 503 for u in urls), 120)
                assert proc.poll() is None
                for session in sessions:  # ending the sessions lets the drains finish
                    async with http.delete(session["whip_url"], headers={
                            "Authorization": f"Bearer {session['session_token']}"}) as resp:
                        assert resp.status == 200
                assert slots_taken(redis) in ({}, {u: 0 for u in urls})  # freed at once
            code = await asyncio.to_thread(exit_code, proc, 300)
            assert code == 0, log.read_text()
            assert [ready(u) for u in urls] == [None, None]
        finally:
            stop(proc)
            log.unlink(missing_ok=True)


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed "
                    "(scripts/install-system-packages.sh)")
async def test_a_replica_that_cannot_start_stops_the_others_and_its_code_is_returned():
    port = free_ports(2)
    log = Path(tempfile.mkstemp(prefix="launch-", suffix=".log")[1])
    with redis_server() as redis:
        env = {"SERVICE_REDIS_URL": redis.url, "SERVICE_MODEL_DIR": "/nonexistent/models"}
        proc = launch(port, env, log, "--replicas", "2")
        try:
            code = await asyncio.to_thread(proc.wait, 600)
            output = log.read_text()
            assert code == 1, output
            # the other one failed the same way, or was stopped by the launcher first
            assert "cannot start" in output and "exited with 1" in output
        finally:
            stop(proc)
            log.unlink(missing_ok=True)


def test_a_bad_public_url_for_several_replicas_is_refused_at_once():
    result = subprocess.run(
        [sys.executable, "-m", "service.launch", "--replicas", "2"], check=False, cwd=ROOT,
        env={**os.environ, "SERVICE_REDIS_URL": "redis://127.0.0.1:1/0",
             "SERVICE_PUBLIC_URL": "http://one.example"},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "must contain {port}" in result.stderr
