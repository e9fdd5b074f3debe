"""The Dockerfile, built and run with podman (tests/image_build.py builds it in the
background while the rest of the suite runs).

Started as an operator would, on a port other than 8080 (SERVICE_PORT): it becomes
ready, its HEALTHCHECK reports it healthy on that port, it runs as the unprivileged
user, answers a face comparison and a silent-liveness request through the Python
client, and stops on SIGTERM with exit status 0. Skips, saying why, where podman is
missing or cannot start containers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import DATA
from image_build import BUILD, TAG, ImageBuild
from verification_client import Client, SilentLiveness

SAME = ("faces/face_recognition/obama__obama.jpg", "faces/face_recognition/obama__obama1.jpg")
KEY, SECRET = "image-key", "image-secret"


@pytest.fixture(scope="module")
def image() -> ImageBuild:
    build = BUILD.wait()
    if build.skip_reason:
        pytest.skip(build.skip_reason)
    assert not build.error, build.error
    print(f"image {TAG}: {build.size_bytes / 1e6:.0f} MB, built in {build.build_s:.0f} s")
    return build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def podman(image: ImageBuild, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    assert image.podman is not None
    return subprocess.run(image.podman.cmd(*args), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def container(image: ImageBuild) -> Iterator[tuple[str, int]]:
    port = free_port()
    name = f"verify-image-test-{os.getpid()}-{port}"
    assert image.podman is not None
    started = podman(image, "run", "-d", "--name", name, "--network", "host",
                     *image.podman.limits, "-e", f"SERVICE_PORT={port}",
                     "-e", "SERVICE_HOST=127.0.0.1", "-e", f"SERVICE_API_KEYS={KEY}:{SECRET}",
                     TAG)
    assert started.returncode == 0, started.stderr
    try:
        yield name, port
    finally:
        podman(image, "rm", "-f", "-t", "0", name)


def running(image: ImageBuild, name: str) -> bool:
    state = podman(image, "inspect", "--format", "{{.State.Running}}", name)
    return state.stdout.strip() == "true"


def wait_ready(image: ImageBuild, name: str, port: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if not running(image, name) or time.monotonic() > deadline:
            logs = podman(image, "logs", name)
            pytest.fail(f"the container never became ready:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)


def test_the_image_serves_on_its_configured_port_as_a_non_root_user_and_stops_cleanly(
        image, container):
    name, port = container
    wait_ready(image, name, port)
    # the HEALTHCHECK follows SERVICE_PORT (it probed 8080 before)
    health = podman(image, "healthcheck", "run", name)
    assert health.returncode == 0, health.stdout + health.stderr
    # the service process is the unprivileged user of the Dockerfile
    status = podman(image, "exec", name, "cat", "/proc/1/status").stdout
    uid = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid) == {"10001"}, status
    client = Client(f"http://127.0.0.1:{port}", KEY, SECRET)
    same = client.compare_faces(DATA / SAME[0], DATA / SAME[1])
    assert same.same_person and same.value >= 50
    liveness = client.check_liveness(DATA / "spoof/silent_face/image_T1.jpg")
    assert isinstance(liveness, SilentLiveness)
    # SIGTERM (podman stop; SIGKILL only after 60 s): a clean exit, status 0
    stopped = podman(image, "stop", "-t", "60", name, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    code = podman(image, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    logs = podman(image, "logs", name)
    assert code == "0", logs.stdout + logs.stderr
