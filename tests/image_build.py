"""The container image, built once per test run in a background thread.

Building takes minutes (pip downloads and unpacks ~1 GB of wheels), mostly waiting on
the network and the disk, so tests/conftest.py starts it as soon as collection has
selected tests/test_image.py and the rest of the suite runs meanwhile; the image test
waits for it. podman is Debian's (scripts/install-system-packages.sh); the base image
is made locally (scripts/make-base-image.sh: no registry is reachable here).

What podman needs on this kind of machine, found by trying (`find_podman`): crun
refuses hybrid cgroup v1/v2 hierarchies ("cgroups in hybrid mode not supported"), so
runc is used when plain podman cannot start a container; and the process may not raise
its resource limits, so containers get explicit ulimits at or under the current ones
(podman's defaults, 1048576 open files, are refused).
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = "localhost/verification-service:test"
BASE = "docker.io/library/python:3.11-slim-bookworm"
CACHE = ROOT / ".cache" / "image"
# the Makefile's MODEL_SOURCE_DIR, else the shared models beside the data (SHARED_DIR)
MODEL_SOURCE = Path(os.environ.get("MODEL_SOURCE_DIR") or Path(
    os.environ.get("SHARED_DIR", ROOT.parent / "shared")) / "models")
BUILD_TIMEOUT_S = 1800.0
ARTIFACT = ROOT / "artifacts" / "image.json"


@dataclass(frozen=True)
class Podman:
    global_args: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()  # --ulimit ... for run and build

    def cmd(self, *args: str) -> list[str]:
        return ["podman", *self.global_args, *args]


def background() -> list[str]:
    """The lowest CPU priority and the lowest best-effort I/O priority: the suite's
    real-time tests (WebRTC sessions) running meanwhile keep the machine first."""
    return ["nice", "-n", "19"] + (["ionice", "-c", "2", "-n", "7"]
                                   if shutil.which("ionice") else [])


def ulimits() -> tuple[str, ...]:
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 16384)
    return ("--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}")


def find_podman() -> tuple[Podman | None, str]:
    """A podman configuration that starts a container here, or why there is none."""
    if shutil.which("podman") is None:
        return None, ("podman is not installed (scripts/install-system-packages.sh "
                      "installs Debian's where apt-get and root or sudo are available)")
    made = subprocess.run([*background(), "bash", str(ROOT / "scripts/make-base-image.sh"),
                           str(CACHE)],
                          capture_output=True, text=True, timeout=900)
    if made.returncode != 0:
        return None, f"cannot make the base image {BASE}: {made.stderr.strip()[-800:]}"
    candidates = [Podman()]
    if shutil.which("runc"):
        candidates.append(Podman(("--runtime", "runc"), ulimits()))
    candidates.append(Podman((), ulimits() + ("--cgroups=disabled",)))
    errors = []
    for podman in candidates:
        tried = subprocess.run(podman.cmd("run", "--rm", "--network", "host",
                                          *podman.limits, BASE, "true"),
                               capture_output=True, text=True, timeout=300)
        if tried.returncode == 0:
            return podman, ""
        errors.append(f"{' '.join(podman.global_args + podman.limits) or 'defaults'}: "
                      f"{tried.stderr.strip()[-300:]}")
    return None, "podman cannot start a container here: " + " | ".join(errors)


@dataclass
class ImageBuild:
    done: threading.Event = field(default_factory=threading.Event)
    podman: Podman | None = None
    skip_reason: str = ""
    error: str = ""
    build_s: float = 0.0
    size_bytes: int = 0
    _started: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="image-build", daemon=True).start()

    def wait(self) -> ImageBuild:
        self.start()
        if not self.done.wait(BUILD_TIMEOUT_S + 960):
            self.error = "the image build did not finish in time"
        return self

    def _run(self) -> None:
        try:
            self.podman, self.skip_reason = find_podman()
            if self.podman is None:
                return
            # the limits apply to the build's RUN steps (build takes no --cgroups)
            limits = tuple(a for a in self.podman.limits if a != "--cgroups=disabled")
            context = (("--build-context", f"models={MODEL_SOURCE}")
                       if MODEL_SOURCE.is_dir() else ())
            started = time.monotonic()
            build = subprocess.Popen(
                background() + self.podman.cmd("build", "--format", "docker", "--network", "host",
                                *limits, *context, "-t", TAG, str(ROOT)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # a test run that ends first (a failure under -x) does not leave it behind
            atexit.register(build.kill)
            try:
                out, err = build.communicate(timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                build.kill()
                out, err = build.communicate()
            self.build_s = time.monotonic() - started
            if build.returncode != 0:
                self.error = f"podman build failed:\n{out[-3000:]}\n{err[-3000:]}"
                return
            size = subprocess.run(self.podman.cmd("image", "inspect", "--format",
                                                  "{{.Size}}", TAG),
                                  capture_output=True, text=True, timeout=60)
            self.size_bytes = int(size.stdout.strip() or 0)
            ARTIFACT.parent.mkdir(exist_ok=True)
            ARTIFACT.write_text(json.dumps({"tag": TAG, "build_s": round(self.build_s, 1),
                                            "size_bytes": self.size_bytes}, indent=2))
        except (OSError, subprocess.SubprocessError) as exc:
            self.error = f"image build: {exc!r}"
        finally:
            self.done.set()


BUILD = ImageBuild()
