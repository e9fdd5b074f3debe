"""Node and npm for the tests of the JavaScript packages (clients/node, web/): skip
markers that say why, and the pinned TypeScript installed once per checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

NODE_DIR = ROOT / "clients/node"


def node_version() -> tuple[int, ...] | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    return tuple(int(p) for p in out.stdout.strip().lstrip("v").split(".")[:2])


NODE = node_version()
needs_node = pytest.mark.skipif(
    NODE is None or NODE < (18, 17),
    reason=f"Node 18.17+ is needed for the Node client (found {NODE}); "
           "scripts/install-system-packages.sh installs Debian's nodejs")


def npm_install() -> Path:
    """The pinned TypeScript from npm (package-lock.json), once per checkout."""
    tsc = NODE_DIR / "node_modules/.bin/tsc"
    if tsc.exists():
        return tsc
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot check dist/ against src/")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not tsc.exists():
        pytest.skip(f"npm ci failed (registry unreachable?): {done.stderr[-500:]}")
    return tsc
