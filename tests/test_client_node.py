"""The Node client (clients/node) against the live service: runs its `node --test`
suite with this process's service, app and fixtures in its environment.

The service is the one the Python client's tests use (integrator_config); the app is a
real aiortc WHIP client behind `POST /start` (tests/integrator.py), so the Node backend
hands it `session.forApp()` as a real backend hands its app. Skips, saying why, where
Node 18+ is missing (scripts/install-system-packages.sh installs Debian's nodejs).

Also: the compiled `dist/` committed beside `src/` is what `tsc` makes of it (npm
installs the pinned TypeScript; skipped when npm or its registry is unreachable).
"""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from conftest import DATA, KEY, SECRET, png_claiming, start_server
from integrator import (
    BURST_KEY,
    BURST_SECRET,
    SESSIONS_PER_MINUTE,
    App,
    integrator_config,
    portrait_of_clip,
    serve,
)
from node_tools import NODE_DIR, needs_node, npm_install

import service.errors


def write_fixtures(folder: Path) -> None:
    (folder / "portrait.jpg").write_bytes(portrait_of_clip())
    blank = np.full((300, 300, 3), 200, np.uint8)
    (folder / "blank.png").write_bytes(cv2.imencode(".png", blank)[1].tobytes())
    spoof = cv2.imread(str(DATA / "spoof/silent_face/image_T1.jpg"))
    blurred = cv2.GaussianBlur(spoof, (0, 0), 6)
    (folder / "blurred.jpg").write_bytes(cv2.imencode(".jpg", blurred)[1].tobytes())
    (folder / "bomb.png").write_bytes(png_claiming(12000, 10000))


@pytest_asyncio.fixture(scope="module")
async def service_url() -> AsyncIterator[str]:
    server = await start_server(integrator_config())
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@needs_node
async def test_the_node_client_suite_passes_against_the_live_service(
        service_url, http, tmp_path):
    write_fixtures(tmp_path)
    app = App(http)
    app_server = await serve([web.post("/start", app.start)])
    statuses = {c.status: c.http_status for c in vars(service.errors).values()
                if isinstance(c, type) and issubclass(c, service.errors.ApiError)}
    env = {**os.environ, "VERIFY_BASE_URL": service_url, "VERIFY_KEY": KEY,
           "VERIFY_SECRET": SECRET, "VERIFY_BURST_KEY": BURST_KEY,
           "VERIFY_BURST_SECRET": BURST_SECRET,
           "VERIFY_SESSIONS_PER_MINUTE": str(SESSIONS_PER_MINUTE),
           "VERIFY_DATA": str(DATA), "VERIFY_FIXTURES": str(tmp_path),
           "VERIFY_APP_URL": str(app_server.make_url("")).rstrip("/"),
           "VERIFY_ERROR_STATUSES": json.dumps(statuses)}
    proc = await asyncio.create_subprocess_exec(
        "node", "--test", "--test-reporter=tap", "test/", cwd=NODE_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(300):
            output, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
        pytest.fail("node --test did not finish in 300 s:\n" + output.decode())
    finally:
        await app.close()
        await app_server.close()
    text = output.decode()
    assert proc.returncode == 0, text
    assert "# fail 0" in text and "# pass 8" in text, text
    assert len(app.streams) == 2  # the app streamed the Node backend's sessions


@needs_node
def test_the_committed_dist_is_what_tsc_makes_of_src(tmp_path):
    tsc = npm_install()
    done = subprocess.run([str(tsc), "-p", "tsconfig.json", "--outDir", str(tmp_path)],
                          cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    built = sorted(p.name for p in tmp_path.iterdir())
    shipped = sorted(p.name for p in (NODE_DIR / "dist").iterdir())
    assert built == shipped
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, NODE_DIR / "dist", built, shallow=False)
    assert not mismatch and not errors, (
        f"dist/ is stale in {mismatch + errors}: run `npm run build` in clients/node")


@needs_node
def test_a_typescript_backend_using_the_client_type_checks(tmp_path):
    """The shipped declarations, resolved through the package's `exports` as a
    TypeScript backend resolves them (strict), including what must not compile."""
    tsc = npm_install()
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "verification-client").symlink_to(NODE_DIR,
                                                                   target_is_directory=True)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "backend.ts").write_text("""
import { NoFaceError, Session, VerificationClient, verifyWebhook, type SessionResult }
  from "verification-client";

const client = new VerificationClient({ baseUrl: "http://127.0.0.1:8080", key: "k", secret: "s" });

export async function check(photo: Uint8Array, hook: Uint8Array): Promise<boolean> {
  const session: Session = await client.createSession({ portrait: photo, ttl: 60,
    challenges: ["eyes_closed", "turn_left"], callbackUrl: "https://backend.example/hook" });
  const decided: SessionResult = await client.result(session);  // waiting: never null
  const now = await client.result(session, { wait: false });
  // @ts-expect-error: without waiting it may be null
  now.passed;
  try {
    const same = await client.compareFaces("id.jpg", photo);
    return same.samePerson && decided.passed;
  } catch (err) {
    if (err instanceof NoFaceError) return err.retryable && err.envelopeStatus === "4003";
    return verifyWebhook({ "x-timestamp": "1" }, hook, "s").result.live;
  }
}
// @ts-expect-error: a session is created with options, not positional arguments
client.createSession("id.jpg");
""")
    (tmp_path / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
        "lib": ["ES2022", "DOM"], "strict": True, "noEmit": True, "types": []},
        "files": ["backend.ts"]}))
    done = subprocess.run([str(tsc), "-p", "tsconfig.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
