"""The onboarding page in a real browser: Debian's Chromium driven over the DevTools protocol.

Chromium's fake camera plays a real clip from shared/data (converted to Y4M here; Chromium
loops it), the page runs whole sessions against the real service on loopback, and a
screenshot of each state at desktop and phone size goes to artifacts/screenshots/.
The DevTools client is the few lines below over aiohttp's WebSocket: no browser driver.

The fake camera cannot follow prompts: a hold-and-release session ends failed, which is
the flow tested end to end. The one state it cannot reach (a `release`, sent only after
a real onset) is shown by handing the page's own data-channel handler one spec-shaped
message; see test_hold_and_release_prompts_are_shown_heard_and_explained.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from conftest import DATA, ROOT, ServiceTestServer, each_case, make_config

from service.app import create_app
from service.rtc.routes import MANAGER
from service.state import STATE

WEB_DIR = ROOT / "web"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Three labelled blinks in 5 s, no glasses: the blink prompt is met on every loop.
CAMERA_CLIP = DATA / "blink" / "zju" / "000001M_FNN.mp4"
PORTRAIT = DATA / "spoof" / "live_frames" / "000001M.jpg"  # the same person, another clip
VIEWPORTS = {
    "desktop": {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    "phone": {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
}
SESSION_TIMEOUT_S = 120.0


def write_y4m(src: Path, dst: Path, width: int = 640, height: int = 480) -> None:
    """Decode a clip and write it as YUV4MPEG2 4:2:0, Chromium's fake-camera format."""
    with av.open(str(src)) as box, dst.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for frame in box.decode(video=0):
            planes = frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()
            out.write(b"FRAME\n")
            out.write(planes.tobytes())


class DevTools:
    """A minimal Chrome DevTools Protocol client (flat sessions) over one WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.listeners: list[Any] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                for listener in list(self.listeners):
                    listener(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session_id: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        message: dict[str, Any] = {"id": next(self._ids), "method": method,
                                   "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        await self._ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@dataclass
class Page:
    """One tab: evaluate JavaScript, wait for a condition, take screenshots."""

    devtools: DevTools
    session_id: str
    viewport: str
    log: list[str] = field(default_factory=list)
    responses: dict[str, str] = field(default_factory=dict)  # url -> requestId
    requests: list[str] = field(default_factory=list)  # "METHOD url"

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("sessionId") != self.session_id:
            return
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.log.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            self.log.append(f"exception: {params['exceptionDetails']}")
        elif method == "Log.entryAdded":
            self.log.append(f"log.{params['entry']['level']}: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(f"{params['request']['method']} {params['request']['url']}")
        elif method == "Network.responseReceived":
            self.responses[params["response"]["url"]] = params["requestId"]
            self.log.append(f"{params['response']['status']} {params['response']['url']}")

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.devtools.send(method, params, self.session_id)

    async def evaluate(self, expression: str, user_gesture: bool = False) -> Any:
        reply = await self.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True,
            "userGesture": user_gesture})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("location.href !== 'about:blank' && document.readyState === 'complete'")

    async def state(self) -> str:
        return await self.evaluate("document.body.dataset.state")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while True:
            with contextlib.suppress(RuntimeError):
                value = await self.evaluate(expression)
                if value:
                    return value
            if loop.time() > until:
                state = await self.evaluate("document.body?.dataset.state")
                tail = "\n".join(self.log[-30:])
                raise AssertionError(f"timed out waiting for {expression!r}; page state "
                                     f"{state!r}; browser log:\n{tail}")
            await asyncio.sleep(0.1)

    async def wait_for_state(self, *states: str, timeout: float = 20.0) -> str:
        return await self.wait_for(
            f"{json.dumps(list(states))}.includes(document.body.dataset.state)"
            " && document.body.dataset.state", timeout)

    async def click(self, element_id: str) -> None:
        """Click as a person would: a user gesture (camera and audio rules look for one)."""
        await self.evaluate(f"document.getElementById({json.dumps(element_id)}).click()",
                            user_gesture=True)

    async def screenshot(self, name: str, full_page: bool = False, settle: float = 0.3) -> Path:
        await asyncio.sleep(settle)  # let transitions and the video's next frame settle
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        shot = await self.send("Page.captureScreenshot", params)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.viewport}-{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def choose_file(self, selector: str, path: Path) -> None:
        root = (await self.send("DOM.getDocument"))["root"]["nodeId"]
        node = await self.send("DOM.querySelector", {"nodeId": root, "selector": selector})
        await self.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [str(path)]})

    def problems(self) -> list[str]:
        """Exceptions, console errors and refusals (a CSP block shows up here)."""
        return [line for line in self.log
                if line.startswith(("exception", "console.error", "log.error"))]

    async def response_body(self, url_suffix: str) -> str:
        url = next(u for u in self.responses if u.endswith(url_suffix))
        reply = await self.send("Network.getResponseBody", {"requestId": self.responses[url]})
        return reply["body"]


@dataclass
class Browser:
    devtools: DevTools

    @contextlib.asynccontextmanager
    async def page(self, viewport: str, init_script: str | None = None) -> AsyncIterator[Page]:
        target = await self.devtools.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.devtools.send("Target.attachToTarget", {
            "targetId": target["targetId"], "flatten": True})
        page = Page(self.devtools, attached["sessionId"], viewport)
        self.devtools.listeners.append(page.on_event)
        try:
            for domain in ("Page", "Runtime", "Network", "Log", "DOM"):
                await page.send(f"{domain}.enable")
            await page.send("Emulation.setDeviceMetricsOverride", VIEWPORTS[viewport])
            if VIEWPORTS[viewport]["mobile"]:
                await page.send("Emulation.setTouchEmulationEnabled", {"enabled": True})
            if init_script:
                await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": init_script})
            yield page
        finally:
            self.devtools.listeners.remove(page.on_event)
            with contextlib.suppress(Exception):
                await self.devtools.send("Target.closeTarget", {"targetId": target["targetId"]})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (scripts/install-system-packages.sh installs Debian's)")
    with tempfile.TemporaryDirectory(prefix="web-test-") as tmp:
        clip = Path(tmp) / "camera.y4m"
        await asyncio.to_thread(write_y4m, CAMERA_CLIP, clip)
        profile = Path(tmp) / "profile"
        profile.mkdir()
        with (Path(tmp) / "chromium.log").open("wb") as chromium_log:
            process = await asyncio.create_subprocess_exec(
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--mute-audio",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}",
                "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={profile}", "about:blank",
                stdin=asyncio.subprocess.DEVNULL, stdout=chromium_log, stderr=chromium_log)
            try:
                port_file = profile / "DevToolsActivePort"
                for _ in range(300):
                    if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
                        break
                    if process.returncode is not None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("Chromium did not open its DevTools port within 30 s")
                if process.returncode is not None:
                    pytest.fail(f"Chromium exited with {process.returncode}")
                port, path = port_file.read_text().splitlines()[:2]
                async with aiohttp.ClientSession() as http:
                    ws = await http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
                    devtools = DevTools(ws)
                    yield Browser(devtools)
                    with contextlib.suppress(Exception):
                        await devtools.send("Browser.close", timeout=5)
                    await devtools.close()
            finally:
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _start(demo_sessions: bool, wait_ready: bool) -> TestServer:
    app = create_app(make_config(demo_sessions=demo_sessions, web_dir=WEB_DIR))
    server = ServiceTestServer(app, host="127.0.0.1")
    await server.start_server()
    if wait_ready:
        await app[STATE].models.wait_ready()
    return server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo_server() -> AsyncIterator[TestServer]:
    server = await _start(demo_sessions=True, wait_ready=True)
    yield server
    await server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plain_server() -> AsyncIterator[TestServer]:
    """demo_sessions off (the default): refusing needs no models, so no waiting for them."""
    server = await _start(demo_sessions=False, wait_ready=False)
    yield server
    await server.close()


def url_of(server: TestServer, path: str = "/") -> str:
    return str(server.make_url(path))


async def create_demo_session(server: TestServer, **fields: Any) -> dict[str, Any]:
    async with (aiohttp.ClientSession() as http,
                http.post(url_of(server, "/v1/demo/sessions"), json=fields) as response):
        assert response.status == 201, await response.text()
        return await response.json()


async def fetch_result(session: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {session['session_token']}"}
    async with (aiohttp.ClientSession() as http,
                http.get(session["result_url"], headers=headers) as response):
        return response.status, await response.json()


def session_param(session: dict[str, Any]) -> str:
    raw = json.dumps({k: session[k] for k in ("whip_url", "session_token", "session_id",
                                                "result_url")}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ---------------------------------------------------------------- serving


async def test_page_and_its_files_are_served_uncached_under_a_strict_policy(plain_server):
    async with aiohttp.ClientSession() as http:
        async with http.get(url_of(plain_server, "/")) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert response.headers["Cache-Control"] == "no-store"
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "connect-src 'self'" in csp
            assert "media-src 'self' blob:" in csp and "'unsafe-inline'" not in csp
            assert 'id="start"' in await response.text()
        async with http.get(url_of(plain_server, "/web/verify.js")) as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
            assert response.headers["Cache-Control"] == "no-store"
        async with http.get(url_of(plain_server, "/web/example.html")) as response:
            # its one inline module script is allowed by hash, nothing else inline
            assert "'sha256-" in response.headers["Content-Security-Policy"]
        for path in ("/web/..%2Fservice%2Fapp.py", "/web/.hidden", "/web/README.md",
                     "/web/missing.js"):
            async with http.get(url_of(plain_server, path)) as response:
                assert response.status == 404, path


# ---------------------------------------------------------------- errors


async def expect_error(page: Page, code: str, phrase: str) -> None:
    """The page ends in its error state with `code`, a plain sentence containing
    `phrase`, and a Retry button."""
    await page.wait_for_state("error")
    assert await page.evaluate("document.body.dataset.error") == code
    text = await page.evaluate("document.getElementById('error-text').textContent")
    assert phrase in text
    assert await page.evaluate("!document.getElementById('retry').hidden")


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_without_the_demo_endpoint_the_page_says_so_and_offers_retry(
        browser, plain_server, viewport):
    async with browser.page(viewport) as page:
        await page.goto(url_of(plain_server))
        assert await page.state() == "idle"
        await page.screenshot("intro", full_page=True)
        await page.click("start")
        await expect_error(page, "session-refused", "does not start verifications by itself")
        await page.screenshot("error-refused")
        # Retry runs the whole attempt again (and is refused again).
        await page.evaluate("document.body.dataset.state = 'probe'")
        await page.click("retry")
        await page.wait_for_state("error")


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_refused_camera_is_explained_in_plain_words(browser, plain_server, viewport):
    deny = """navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"""
    async with browser.page(viewport, init_script=deny) as page:
        await page.goto(url_of(plain_server))
        await page.click("start")
        await expect_error(page, "camera-denied", "Allow the camera")
        await page.screenshot("error-camera")


async def test_an_expired_session_link_is_refused_with_a_plain_message(browser, demo_server):
    session = await create_demo_session(demo_server, challenges=1, ttl=10)
    # the janitor's view 11 s from now: the session has expired (no waiting for it)
    await demo_server.app[MANAGER].sweep(now=time.time() + 11)
    async with browser.page("phone") as page:
        await page.goto(url_of(demo_server, f"/?session={session_param(session)}"))
        # the token leaves the address bar as soon as the page has read it
        assert "session=" not in await page.evaluate("location.href")
        await page.click("start")
        await page.wait_for_state("error")
        assert await page.evaluate("document.body.dataset.error") == "session-expired"
        await page.screenshot("error-expired")


# ---------------------------------------------------------------- whole sessions


async def _run_to_result(page: Page) -> dict[str, Any]:
    await page.click("start")
    await page.wait_for("document.body.dataset.challenge", timeout=SESSION_TIMEOUT_S)
    await page.wait_for_state("result", "error", timeout=SESSION_TIMEOUT_S)
    if await page.state() == "error":
        text = await page.evaluate("document.getElementById('error-text').textContent + ' '"
                                   " + document.getElementById('error-detail').textContent")
        raise AssertionError(f"the page ended in error: {text}\n" + "\n".join(page.log[-30:]))
    await page.screenshot("result", full_page=True)
    await page.evaluate("document.querySelector('details.raw').open = true")
    await page.screenshot("result-details", full_page=True)
    payload = await page.evaluate("document.getElementById('payload').textContent")
    (SCREENSHOTS / f"{page.viewport}-result.json").write_text(payload)
    return json.loads(payload)


def assert_hung_up(page: Page, session: dict[str, Any]) -> None:
    """WHIP: the offer was POSTed to whip_url and its Location DELETEd at the end."""
    assert f"POST {session['whip_url']}" in page.requests
    assert any(r.startswith("DELETE ") and "/v1/sessions/" in r for r in page.requests), \
        page.requests


async def test_demo_page_with_an_id_photo_shows_the_services_result(browser, demo_server):
    async with browser.page("desktop") as page:
        await page.goto(url_of(demo_server, "/?challenges=blink"))
        await page.choose_file("#portrait-input", PORTRAIT)
        await page.wait_for("!document.getElementById('portrait-preview').hidden")
        await page.screenshot("intro-portrait", full_page=True)
        shown = await _run_to_result(page)
        session = json.loads(await page.response_body("/v1/demo/sessions"))
        facts = await page.evaluate("document.getElementById('facts').textContent")
        assert page.problems() == []
        assert_hung_up(page, session)
    assert session["challenges"][0] == "blink"  # then hold actions (min_holds)
    status, stored = await fetch_result(session)
    assert status == 200
    assert shown["infoList"] == stored["infoList"]
    assert shown["messageString"] == stored["messageString"] == {"status": "2000",
                                                                  "value": "success"}
    descs = [item["desc"] for item in shown["infoList"][0]["veritem"]]
    assert "Live or not" in descs
    # the ID photo was sent with the session: the face comparison is part of the answer
    assert any(d.startswith("Decision result:") for d in descs), descs
    assert "Same person as the ID photo" in facts
    # the camera plays at 30 fps; the page asks for 15 (the service analyses 10)
    assert 5.0 < shown["detail"]["received_fps"] <= 16.5, shown["detail"]


async def test_integrator_session_link_runs_on_a_phone(browser, demo_server):
    session = await create_demo_session(demo_server, challenges=["blink"])
    async with browser.page("phone") as page:
        await page.goto(url_of(demo_server, f"/?session={session_param(session)}"))
        assert await page.evaluate("document.getElementById('portrait-box').hidden")
        shown = await _run_to_result(page)
        assert page.problems() == []
        assert_hung_up(page, session)
        # single use: no "Start again" that could only fail
        assert await page.evaluate("getComputedStyle(document.getElementById('again'))"
                                   ".display === 'none'")
    status, stored = await fetch_result(session)
    assert status == 200
    assert shown["infoList"] == stored["infoList"]
    assert shown["messageString"] == stored["messageString"]


async def test_example_page_embeds_verify_js(browser, demo_server):
    async with browser.page("desktop") as page:
        await page.goto(url_of(demo_server, "/web/example.html"))
        await page.click("go")
        out = await page.wait_for(
            "(t => t.startsWith('{') && t)(document.getElementById('out').textContent)",
            timeout=SESSION_TIMEOUT_S)
        assert json.loads(out)["messageString"]["status"] == "2000"
        assert page.problems() == []


# ---------------------------------------------------------------- hold-and-release prompts

# Test instrument, installed before the page's scripts: records what the page's data
# channel receives and, from the first `challenge` on, holds back the channel's and the
# peer connection's events (in order) until the test lets them through, so that each
# screenshot is taken before the next real message replaces the state (the service
# goes on and may finish meanwhile). `inject` hands the page's own handler a message
# as if the channel had received it; `pc` is the page's peer connection. `widget()` reads what the widget shows and says
# (phase, action, big and small line, step, announcements); `atPrompt` is that, taken
# as soon as the page has handled the first prompt. Tones (oscillators) and vibration
# patterns are counted; the browser runs muted.
CHANNEL_GATE = """(() => {
  const t = window.__test = { channel: null, received: [], held: null, injecting: false,
                              tones: 0, vibrations: [], atPrompt: null };
  t.widget = () => {
    const root = document.querySelector('.vf-host').shadowRoot;
    const box = root.querySelector('.vf');
    const text = (sel) => root.querySelector(sel).textContent;
    const live = (mode) => root.querySelector(`.vf-sr[aria-live="${mode}"]`).textContent;
    return { phase: box.dataset.phase || '', action: box.dataset.action || '',
             prompt: text('.vf-prompt'), detail: text('.vf-detail'), step: text('.vf-step'),
             urgent: live('assertive'), polite: live('polite') };
  };
  const deliver = ({ target, type, data }) => target.dispatchEvent(
    type === 'message' ? new MessageEvent('message', { data }) : new Event(type));
  t.inject = (msg) => {
    t.injecting = true;
    try { t.channel.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(msg) })); }
    finally { t.injecting = false; }
  };
  t.heldTypes = () => (t.held || []).map((e) => e.type === 'message' ? JSON.parse(e.data).type : e.type);
  t.deliverThrough = (type) => {
    const now = t.held.splice(0, t.heldTypes().indexOf(type) + 1);
    const rest = t.held;
    t.held = null;
    now.forEach(deliver);
    t.held = rest;
  };
  t.open = () => { const held = t.held || []; t.held = null; held.forEach(deliver); };
  // Registered before the page's own listeners, so it runs first and may hold an event.
  const gate = (event) => {
    if (t.injecting) return;
    if (t.held) {
      event.stopImmediatePropagation();
      t.held.push({ target: event.target, type: event.type, data: event.data });
      return;
    }
    if (event.type !== 'message') return;
    const msg = JSON.parse(event.data);
    t.received.push(msg);
    if (msg.type === 'challenge' && !t.gated) {
      t.gated = true;
      t.held = [];  // from the next event on: this one still reaches the page
      setTimeout(() => { t.atPrompt = t.widget(); });  // once the page has handled it
    }
  };
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      t.pc = this;
      this.addEventListener('connectionstatechange', gate);
    }
    createDataChannel(...args) {
      const channel = t.channel = super.createDataChannel(...args);
      channel.addEventListener('message', gate);
      channel.addEventListener('close', gate);
      return channel;
    }
  };
  navigator.vibrate = (pattern) => { t.vibrations.push(pattern); return true; };
  const oscillator = AudioContext.prototype.createOscillator;
  AudioContext.prototype.createOscillator = function () {
    t.tones += 1;
    return oscillator.call(this);
  };
})();"""
WIDGET = "document.querySelector('.vf-host').shadowRoot"
REASONS = {"too_early", "too_late", "wrong_action", "hold_broken", "not_delivered"}


async def test_hold_and_release_prompts_are_shown_heard_and_explained(browser, demo_server):
    """A real session with hold-and-release challenges, as far as a camera that cannot
    follow prompts gets: the service's first `challenge` shows the instruction with its
    animation and is announced; a reaction time later the page says "hold"; the
    service's real `challenge_failed` is explained in plain words; the result shown is
    the stored one, with Retry. The `release` state cannot be reached with this camera
    (the service sends it only after a real onset), so for that state alone one
    spec-shaped `release` message is handed to the page's own data-channel handler
    (window.__test.inject, CDP Runtime.evaluate) while the real messages are held back
    in order, and the screenshot, the words, the announcement, the tone and the
    vibration are checked. The phone runs with prefers-reduced-motion: no animation,
    the pose alone. The desktop and the phone, each in its own tab, run at once."""
    await each_case({viewport: hold_and_release_prompts(browser, demo_server, viewport)
                     for viewport in VIEWPORTS})


async def hold_and_release_prompts(browser: Browser, demo_server: TestServer,
                                   viewport: str) -> None:
    async with browser.page(viewport, init_script=CHANNEL_GATE) as page:
        reduced = viewport == "phone"
        if reduced:
            await page.send("Emulation.setEmulatedMedia", {"features": [
                {"name": "prefers-reduced-motion", "value": "reduce"}]})
        challenges = "eyes_closed,mouth_open,turn_left"
        await page.goto(url_of(demo_server, f"/?challenges={challenges}"))
        await page.click("start")

        # 1. the service's first prompt (a real message); the screenshot at once, before
        # the page turns to "hold" a second later
        await page.wait_for("window.__test.atPrompt", timeout=SESSION_TIMEOUT_S)
        # the pose the animation leads to (no animation with reduced motion)
        animations = await page.evaluate(f"{WIDGET}.getAnimations().map((a) => {{"
                                         " a.currentTime = 1500; return a.animationName; })")
        await page.screenshot("prompt", settle=0)
        shown = await page.evaluate("window.__test.atPrompt")
        prompt = next(m for m in await page.evaluate("window.__test.received")
                      if m["type"] == "challenge")
        assert prompt["action"] == "eyes_closed" and prompt["index"] == 0
        assert prompt["total"] == 3 and prompt["window_ms"] > 0
        assert await page.evaluate("document.body.dataset.challenge") == "eyes_closed"
        assert (shown["phase"], shown["action"]) == ("act", "eyes_closed")
        assert shown["prompt"] == "Close your eyes"
        assert "until you hear a tone" in shown["detail"]
        assert shown["step"] == "Step 1 of 3"
        assert shown["urgent"].startswith("Step 1 of 3. Close your eyes.")
        assert ("vf-close-eyes" in animations) is not reduced, animations
        await assert_link_measured_good(page)

        # 2. a reaction time later: hold (the page's own timer)
        await page.wait_for(f"{WIDGET}.querySelector('.vf').dataset.phase === 'hold'")
        shown = await page.evaluate("window.__test.widget()")
        assert shown["prompt"] == "Hold…"
        assert shown["detail"] == "Keep your eyes closed until you hear the tone."
        await page.screenshot("hold", settle=0.4)

        # 3. release: the one injected message (see the docstring)
        assert await page.evaluate("window.__test.tones") == 0
        await page.evaluate("window.__test.inject("
                            "{type: 'release', action: 'eyes_closed', index: 0})")
        shown = await page.evaluate("window.__test.widget()")
        assert (shown["phase"], shown["prompt"]) == ("release", "Open your eyes")
        assert shown["urgent"] == "Open your eyes."
        assert await page.evaluate("window.__test.tones") > 0
        assert await page.evaluate("window.__test.vibrations.length") == 1
        await page.screenshot("release", settle=0.4)

        # 4. the service's real verdict on the challenge, explained
        await page.wait_for("window.__test.heldTypes().includes('challenge_failed')",
                            timeout=SESSION_TIMEOUT_S)
        await page.evaluate("window.__test.deliverThrough('challenge_failed')")
        failed = next(m for m in await page.evaluate("window.__test.received")
                      if m["type"] == "challenge_failed")
        assert failed["action"] == "eyes_closed" and failed["index"] == 0
        assert failed["reason"] in REASONS
        title, advice = await page.evaluate(
            f"import('/web/verify.js').then((m) => m.describeFailure({json.dumps(failed['reason'])}))")
        shown = await page.evaluate("window.__test.widget()")
        assert (shown["phase"], shown["prompt"], shown["detail"]) == ("failed", title, advice)
        assert shown["urgent"] == f"{title}. {advice}"
        await page.screenshot("failed", settle=0.4)

        # 5. the rest of the session as it came; the result shown is the stored one
        await page.evaluate("window.__test.open()")
        await page.wait_for_state("result", "error", timeout=SESSION_TIMEOUT_S)
        assert await page.state() == "result", await page.evaluate(
            "document.getElementById('error-text').textContent")
        await page.screenshot("result-failed", full_page=True)
        payload = json.loads(await page.evaluate("document.getElementById('payload').textContent"))
        session = json.loads(await page.response_body("/v1/demo/sessions"))
        result_text = await page.evaluate("document.getElementById('result-text').textContent")
        retry = await page.evaluate("document.getElementById('again').textContent")
        # the poll ended with the session: no quality shown, no note left behind
        assert await page.evaluate(f"{WIDGET}.querySelector('.vf').dataset.link") is None
        assert await page.evaluate(f"{WIDGET}.querySelector('.vf-link').textContent") == ""
        assert page.problems() == []
        assert_hung_up(page, session)
    assert session["challenges"] == challenges.split(",")
    status, stored = await fetch_result(session)
    assert status == 200
    assert payload["infoList"] == stored["infoList"]
    assert payload["messageString"] == stored["messageString"]
    veritems = {i["desc"]: i["content"] for i in stored["infoList"][0]["veritem"]}
    assert veritems["Live or not"] == "Non-living body"
    assert advice in result_text
    assert retry == "Retry"


# ---------------------------------------------------------------- languages


async def test_the_page_and_widget_speak_the_browsers_language(browser, demo_server):
    """German, the second shipped language (web/messages.js), chosen by the browser's
    language alone: the page's static words, the widget's prompt, step and hold lines
    and the result, in a real session; `?lang=en` overrides the browser; an integrator's
    `start({lang, messages})` replaces single entries and keeps the rest of the table."""
    async with browser.page("desktop", init_script=CHANNEL_GATE) as page:
        agent = (await page.devtools.send("Browser.getVersion"))["userAgent"]
        await page.send("Emulation.setUserAgentOverride", {
            "userAgent": agent, "acceptLanguage": "de-DE,de;q=0.9"})
        await page.goto(url_of(demo_server, "/?challenges=eyes_closed,mouth_open,turn_left"))
        assert await page.evaluate("navigator.language") == "de-DE"
        assert await page.evaluate("document.documentElement.lang") == "de"
        text = await page.evaluate("document.getElementById('intro').innerText")
        assert "Prüfen wir, ob Sie es wirklich sind" in text
        assert "Erlauben Sie die Kamera, wenn Ihr Browser fragt." in text
        assert "Foto hierher ziehen oder Datei auswählen" in text
        assert await page.evaluate("document.title") == "Identitätsprüfung"
        assert await page.evaluate("document.getElementById('start').textContent") == \
            "Kamera erlauben und starten"
        await page.screenshot("de-intro", full_page=True)
        missing = await page.evaluate("""import('/web/messages.js').then(({ MESSAGES }) => {
            const keys = (o, p = '') => Object.entries(o).flatMap(([k, v]) =>
                v && typeof v === 'object' && !Array.isArray(v) ? keys(v, `${p}${k}.`) : [p + k]);
            const en = keys(MESSAGES.en), de = keys(MESSAGES.de);
            return [en.filter((k) => !de.includes(k)), de.filter((k) => !en.includes(k))]; })""")
        assert missing == [[], []], missing  # German has exactly English's entries

        await page.click("start")
        await page.wait_for("window.__test.atPrompt", timeout=SESSION_TIMEOUT_S)
        await page.screenshot("de-prompt", settle=0)
        shown = await page.evaluate("window.__test.atPrompt")
        assert shown["prompt"] == "Schließen Sie die Augen"
        assert shown["detail"] == "Halten Sie sie geschlossen, bis Sie einen Ton hören."
        assert shown["step"] == "Schritt 1 von 3"
        assert shown["urgent"].startswith("Schritt 1 von 3. Schließen Sie die Augen.")
        await page.wait_for(f"{WIDGET}.querySelector('.vf').dataset.phase === 'hold'")
        assert (await page.evaluate("window.__test.widget()"))["prompt"] == "Halten…"

        await page.evaluate("window.__test.open()")  # the rest of the real session
        await page.wait_for_state("result", "error", timeout=SESSION_TIMEOUT_S)
        assert await page.state() == "result"
        assert await page.evaluate("document.getElementById('result-title').textContent") \
            == "Wir konnten keinen lebenden Menschen bestätigen"
        assert await page.evaluate("document.getElementById('again').textContent") == \
            "Erneut versuchen"
        facts = await page.evaluate("document.getElementById('facts').textContent")
        assert "Lebender Mensch" in facts and "Befolgte Anweisungen" in facts
        await page.screenshot("de-result-failed", full_page=True)

        await page.goto(url_of(demo_server, "/?lang=en"))
        assert await page.evaluate("document.documentElement.lang") == "en"
        assert await page.evaluate("document.getElementById('start').textContent") == \
            "Allow camera and start"

        await page.goto(url_of(demo_server, "/web/example.html"))
        await page.evaluate("""import('/web/verify.js').then((m) => {
            m.start({ sessionUrl: '/v1/demo/sessions', container: document.getElementById('verify'),
                      challenges: ['eyes_closed'], lang: 'de',
                      messages: { prompts: { eyes_closed: { say: 'Augen zu!' } } } })
              .catch(() => {});
            return true; })""", user_gesture=True)
        await page.wait_for(f"{WIDGET}.querySelector('.vf-prompt').textContent === 'Augen zu!'",
                            timeout=SESSION_TIMEOUT_S)
        assert await page.evaluate(f"{WIDGET}.querySelector('.vf-detail').textContent") == \
            "Halten Sie sie geschlossen, bis Sie einen Ton hören."
        assert page.problems() == []


# ---------------------------------------------------------------- connection quality


async def assert_link_measured_good(page: Page) -> None:
    """On loopback the widget's own getStats poll has judged the link good (the first
    measured reading, before the first prompt was answered), shows no weak note, and
    linkReading reads the page's real peer connection: the service's RTCP receiver
    report (loss, round trip) and the frames a second sent, all under LINK_LIMITS."""
    await page.wait_for(f"{WIDGET}.querySelector('.vf').dataset.link === 'good'")
    reading = await page.wait_for("""import('/web/verify.js').then(async (m) => {
        const r = m.linkReading(await window.__test.pc.getStats());
        return r.loss !== null && r.rttMs !== null && r.fps !== null
          && { ...r, weak: m.linkIsWeak(r), limits: m.LINK_LIMITS }; })""")
    limits = reading["limits"]
    assert 0 <= reading["loss"] < limits["loss"], reading
    assert 0 <= reading["rttMs"] < limits["rttMs"], reading
    assert reading["fps"] >= limits["minFps"], reading
    assert reading["weak"] is False
    assert await page.evaluate(f"{WIDGET}.querySelector('.vf-link').textContent") == ""


# Stats objects shaped as Chromium reports them for a sent camera track: its
# outbound-rtp, and the remote-inbound-rtp the service's RTCP receiver reports make.
STATS = """(over = {}) => {
  const remote = { id: 'RIV1', type: 'remote-inbound-rtp', kind: 'video', ssrc: 1,
    packetsLost: 2, jitter: 0.004, fractionLost: 0, roundTripTime: 0.012,
    totalRoundTripTime: 0.3, roundTripTimeMeasurements: 25, localId: 'OTV1',
    ...(over.remote || {}) };
  const out = { id: 'OTV1', type: 'outbound-rtp', kind: 'video', ssrc: 1,
    packetsSent: 1800, bytesSent: 1500000, framesSent: 450, framesPerSecond: 15,
    frameWidth: 640, frameHeight: 480, qualityLimitationReason: 'none',
    ...(over.out || {}) };
  const transport = { id: 'T01', type: 'transport', dtlsState: 'connected' };
  const audio = { id: 'RIA1', type: 'remote-inbound-rtp', kind: 'audio',
    fractionLost: 0.5, roundTripTime: 2 };
  return new Map([remote, out, transport, audio].map((s) => [s.id, s]));
}"""


async def test_the_link_rule_reads_stats_and_needs_two_weak_readings_in_a_row(
        browser, plain_server):
    """The pure core of the connection hint (web/verify.js): linkReading takes the
    video's loss and round trip from remote-inbound-rtp and the sent frame rate from
    outbound-rtp (audio and other stats ignored, missing fields null); linkIsWeak
    names a reading weak by loss, by round trip, or by a frame rate the bandwidth
    limits, never by what was not measured; nextLinkState shows weak only after two
    weak readings in a row and clears it only after two good ones."""
    async with browser.page("desktop") as page:
        await page.goto(url_of(plain_server))
        got = await page.evaluate(f"""import('/web/verify.js').then((m) => {{
            const stats = {STATS};
            const read = (over) => m.linkReading(stats(over));
            const good = read();
            const lossy = read({{ remote: {{ fractionLost: 0.0625 }} }});
            const slow = read({{ remote: {{ roundTripTime: 0.61 }} }});
            const starved = read({{ out: {{ framesPerSecond: 3,
                                           qualityLimitationReason: 'bandwidth' }} }});
            const busyCpu = read({{ out: {{ framesPerSecond: 3,
                                           qualityLimitationReason: 'cpu' }} }});
            const early = m.linkReading([{{ type: 'outbound-rtp', kind: 'video' }},
                                         {{ type: 'remote-inbound-rtp', kind: 'video' }}]);
            const run = (readings) => {{
              let state = null;
              return readings.map((r) => (state = m.nextLinkState(state, r)).quality);
            }};
            return {{
              good, lossy, slow, early, limits: m.LINK_LIMITS,
              weak: [good, lossy, slow, starved, busyCpu, early].map((r) => m.linkIsWeak(r)),
              burst: run([early, good, lossy, good, lossy, good]),
              lasting: run([good, lossy, lossy, lossy, good, lossy, good, good]),
              weakFirst: run([lossy, lossy]),
            }};
        }})""")
    assert got["good"] == {"loss": 0, "rttMs": 12, "fps": 15, "limitedBy": "none"}
    assert got["lossy"]["loss"] == 0.0625 and got["slow"]["rttMs"] == 610
    assert got["early"] == {"loss": None, "rttMs": None, "fps": None, "limitedBy": None}
    assert got["limits"] == {"loss": 0.05, "rttMs": 500, "minFps": 5, "readings": 2}
    # good, 6% loss, 610 ms, 3 fps for want of bandwidth: weak; 3 fps for want of CPU
    # is not the connection; nothing measured yet is not weak
    assert got["weak"] == [False, True, True, True, False, False]
    # nothing measured: no quality yet; single weak readings never show
    assert got["burst"] == [None, "good", "good", "good", "good", "good"]
    assert got["lasting"] == ["good", "good", "weak", "weak", "weak", "weak", "weak", "good"]
    assert got["weakFirst"] == [None, "weak"]


# Test instrument: the page's real getStats, with the video's loss in the service's
# receiver reports replaced by window.__link.loss (null: the real value).
LOSSY_LINK = """(() => {
  const link = window.__link = { loss: 0.12, events: [] };
  const native = RTCPeerConnection.prototype.getStats;
  RTCPeerConnection.prototype.getStats = async function (...args) {
    const report = await native.apply(this, args);
    if (link.loss === null) return report;
    return new Map([...report].map(([id, s]) => [id, s.type === 'remote-inbound-rtp'
      ? { ...s, fractionLost: link.loss } : s]));
  };
})();"""


async def test_a_lossy_link_is_named_as_the_problem_until_it_recovers(browser, demo_server):
    """The widget in a real session, its getStats answers reporting 12% of the video
    lost (LOSSY_LINK): after two readings in a row, before any prompt, it says the
    connection is the problem in its own line while the hint line goes on with the
    service's face hints, and emits a `link` event with the measured numbers; two good
    readings later the note is gone; cancelling the check ends the poll and leaves
    nothing shown. The camera is a canvas with no face on it, so the service waits
    for a face and sends no prompt (the session lasts as long as the test needs)."""
    async with browser.page("phone", init_script=LOSSY_LINK) as page:
        await page.goto(url_of(demo_server, "/web/example.html"))
        await page.evaluate("""import('/web/verify.js').then((m) => {
            const link = window.__link;
            link.abort = new AbortController();
            const canvas = Object.assign(document.createElement('canvas'), { width: 320, height: 240 });
            const paint = canvas.getContext('2d');
            let shade = 0;
            link.painter = setInterval(() => {
              shade = (shade + 7) % 200;
              paint.fillStyle = `rgb(${40 + shade}, 90, 120)`;
              paint.fillRect(0, 0, 320, 240);
            }, 66);
            m.start({ sessionUrl: '/v1/demo/sessions', container: document.getElementById('verify'),
                      stream: canvas.captureStream(15), challenges: ['eyes_closed'], lang: 'en',
                      signal: link.abort.signal, onEvent: (e) => link.events.push(e) })
              .then(() => { link.ended = 'result'; }, (e) => { link.ended = e.code; });
            return true; })""", user_gesture=True)
        note = f"{WIDGET}.querySelector('.vf-link').textContent"
        link_events = "window.__link.events.filter((e) => e.type === 'link')"
        said = await page.wait_for(note, timeout=SESSION_TIMEOUT_S)
        words = await page.evaluate("import('/web/messages.js').then((m) => m.MESSAGES.en.hints)")
        assert said == words["weak link"]
        assert await page.evaluate(f"{WIDGET}.querySelector('.vf').dataset.link") == "weak"
        weak = next(e for e in await page.evaluate(link_events) if e["quality"] == "weak")
        assert weak["loss"] == 0.12
        assert weak["rtt_ms"] >= 0 and weak["fps"] > 0, weak
        # the face hints go on in their own line, the oval follows them
        await page.wait_for(f"{WIDGET}.querySelector('.vf-hint').textContent"
                            f" === {json.dumps(words['no face'])}")
        assert await page.evaluate(f"{WIDGET}.querySelector('.vf-oval').dataset.good") == "false"
        assert await page.evaluate(note) == words["weak link"]
        await page.screenshot("link-weak", settle=0)

        await page.evaluate("window.__link.loss = null")  # the real loopback link again
        await page.wait_for(f"{link_events}.at(-1).quality === 'good'")
        events = await page.evaluate(link_events)
        assert [e["quality"] for e in events][-2:] == ["weak", "good"]
        assert events[-1]["loss"] < 0.05
        assert await page.evaluate(note) == ""
        received = await page.evaluate("window.__link.events.map((e) => e.type)")
        assert "challenge" not in received and "progress" in received

        await page.evaluate("window.__link.abort.abort(); clearInterval(window.__link.painter)")
        assert await page.wait_for("window.__link.ended") == "aborted"
        assert await page.evaluate(f"{WIDGET}.querySelector('.vf').dataset.link") is None
        assert await page.evaluate(note) == ""
        assert page.problems() == []
