"""Run fuzz cases against the real service in its own process and judge every answer.

Why a separate process (not the in-process test server): a decoder that crashes takes
the whole process down (SIGSEGV), which only a parent can see and survive; its memory
is measured on its own (the whole process tree, decoder workers included); and its
log is the file an operator would read, so the log scan sees what they would see.

What is judged, per request: an answer came (unless we deliberately cut the body and
half-closed), no HTTP 5xx, the body is the vendor envelope `{"infoList": [...],
"messageString": {"status", "value"}}` with a status other than 5000 (or one of the
answers listed in `allowed_non_envelope`), the status the case expects if it names
one, and nothing of the request (our marker, the secret) echoed back. Per run: the
process alive after every case (restarted, and counted, when not), peak and final RSS
of the process tree, latencies, and a scan of the service's log for the secret, any
credential we sent or received, base64 runs, our marker and tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

from testing.fuzzcases import MARK, Case, Context, Request, http, valid_offer

ROOT = Path(__file__).resolve().parents[1]
KEY = "fuzzkey"
# A deliberately incomplete request is half-closed when no answer came within this.
HALF_CLOSE_AFTER_S = 1.0
# "Busy" (overload) is a valid answer to any request; it is counted, never a failure.
BUSY = "4290"
T = TypeVar("T")


# ---- the service process -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(secret: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Limits that would otherwise hide the cases behind 4290s: the failed-auth lockout
    (many cases carry bad credentials on purpose), the session caps (every WHIP case
    creates a session), and short session lifetimes so peers do not pile up. No drain
    grace at SIGTERM: sessions the cases created with a long ttl (up to 600 s) would
    hold the stop until it gives up and kills the process."""
    return {
        **os.environ,
        "SERVICE_API_KEYS": f"{KEY}:{secret}",
        "SERVICE_MODEL_DIR": os.environ.get("SERVICE_MODEL_DIR", str(ROOT / ".models")),
        "SERVICE_AUTH__MAX_FAILED_AUTH": "1000000",
        "SERVICE_SESSIONS__MAX_ACTIVE": "100000",
        "SERVICE_SESSIONS__PER_KEY_PER_MINUTE": "100000",
        "SERVICE_SESSIONS__TTL_S": "10",
        "SERVICE_SESSIONS__RESULT_RETENTION_S": "10",
        "SERVICE_REPLICAS__DRAIN_GRACE_S": "0",
        **(extra or {}),
    }


@dataclass
class ServiceProcess:
    """`python -m service` on a free loopback port, its output appended to log_path."""

    log_path: Path
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None
    starts: int = 0

    def start(self, ready_timeout_s: float = 180.0) -> None:
        self.port = free_port()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=service_env(self.secret, self.extra_env), stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",
                                            timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service did not become ready (see {self.log_path})")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces: fields after its closing ')'
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def _status_kb(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pids(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def tree_rss_mb(pid: int) -> float:
    """Resident memory of the service and every process below it (decoder workers)."""
    return sum(_status_kb(p, "VmRSS") for p in tree_pids(pid)) / 1024


def tree_breakdown(pid: int) -> str:
    """RSS per process of the tree (the service first, then its workers)."""
    return ", ".join(f"{p}: {_status_kb(p, 'VmRSS') / 1024:.0f}" for p in tree_pids(pid))


def tree_hwm_mb(pid: int) -> float:
    """Sum of each process's own peak (VmHWM): an upper bound of the tree's peak."""
    return sum(_status_kb(p, "VmHWM") for p in tree_pids(pid)) / 1024


class RssSampler:
    """Samples the tree's RSS a few times a second in a thread (the peak of a 3 s
    decompression bomb would be missed by before/after readings)."""

    def __init__(self, service: ServiceProcess, period_s: float = 0.25) -> None:
        self.service, self.period_s = service, period_s
        self.peak_mb = 0.0
        self.peak_hwm_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            proc = self.service.proc
            if proc is not None and proc.poll() is None:
                self.peak_mb = max(self.peak_mb, tree_rss_mb(proc.pid))
                self.peak_hwm_mb = max(self.peak_hwm_mb, tree_hwm_mb(proc.pid))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- one exchange on a socket ------------------------------------------------------


@dataclass
class Answer:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""
    elapsed_s: float = 0.0
    extra: list[Answer] = field(default_factory=list)  # later responses on the connection


def parse_answer(data: bytes) -> Answer:
    """The first final response in `data` (1xx interim answers skipped, chunked bodies
    joined); any responses after it (a pipelined or leftover request's) in `extra`."""
    answer, rest = _one_answer(data)
    while rest.strip() and not answer.error:
        more, rest = _one_answer(rest)
        answer.extra.append(more)
        if more.error:
            break
    return answer


def _one_answer(data: bytes) -> tuple[Answer, bytes]:
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return Answer(error="unparseable answer" if data else "closed without answer"), b""
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            return Answer(error="unparseable answer"), b""
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        if 100 <= status < 200:
            data = rest
            continue
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, rest = _dechunk(rest)
        elif headers.get("content-length", "").isdigit():
            size = int(headers["content-length"])
            body, rest = rest[:size], rest[size:]
        else:
            body, rest = rest, b""
        return Answer(status, headers, body), rest


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    """(body, bytes after the last chunk)."""
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            return out, data.partition(b"\r\n")[2]
        out += data[:size]
        data = data[size + 2:]
    return out, b""


async def exchange(port: int, request: Request, timeout_s: float) -> Answer:
    """Write the request, read until the server closes (or the timeout)."""
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
            writer.write(request.raw)
            chunks: list[bytes] = []
            try:
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                pass  # the server may answer and close before reading all we sent
            eof_sent = not request.half_close
            while True:
                try:
                    if eof_sent:
                        chunk = await reader.read(1 << 16)
                    else:
                        # an incomplete request: once the server has said what it has
                        # to say and waits for bytes that never come, shut our side
                        async with asyncio.timeout(HALF_CLOSE_AFTER_S):
                            chunk = await reader.read(1 << 16)
                except TimeoutError:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    eof_sent = True
                    continue
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        answer = parse_answer(b"".join(chunks))
    except TimeoutError:
        answer = Answer(error="no answer within the client timeout")
    except OSError as exc:
        answer = Answer(error=f"connection failed: {exc.__class__.__name__}")
    finally:
        if writer is not None:
            writer.close()
    answer.elapsed_s = time.perf_counter() - started
    return answer


# ---- judging an answer -------------------------------------------------------------


def envelope(answer: Answer) -> dict | None:
    """The vendor envelope in the answer, or None."""
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        body = json.loads(answer.body)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("infoList"), list):
        return None
    msg = body.get("messageString")
    if not isinstance(msg, dict) or not isinstance(msg.get("status"), str) \
            or not isinstance(msg.get("value"), str):
        return None
    return body


def allowed_non_envelope(request: Request, answer: Answer) -> bool:
    """The answers that are not the envelope by design, listed one by one:
    HEAD (no body), CORS preflights (204 on /v1/...), /healthz and /readyz (their own
    small JSON), the web page and its files (/ and /web/*), a created session (201
    JSON), a WHIP answer (201 SDP, or JSON {"type": "answer"}), a trickle PATCH (204)
    and a WHIP DELETE (200, empty)."""
    method, path = request.method, urlsplit(request.path).path
    status, ctype, body = answer.status or 0, answer.headers.get("content-type", ""), answer.body
    if method == "HEAD":
        return status < 500 and not body
    if method == "OPTIONS" and status == 204 and path.startswith("/v1/"):
        return True
    if method == "GET" and path in ("/healthz", "/readyz") and status == 200:
        return ctype.startswith("application/json") and b'"status"' in body
    if method == "GET" and (path == "/" or path.startswith("/web/")) and status == 200:
        return ctype.split(";")[0] in ("text/html", "text/javascript", "text/css",
                                       "image/svg+xml", "image/png", "image/x-icon")
    if method == "POST" and path == "/v1/sessions" and status == 201:
        return b'"session_id"' in body
    if path.startswith("/v1/sessions/") and path.endswith("/whip"):
        if method == "POST" and status == 201:
            return (ctype.startswith("application/sdp") and body.startswith(b"v=0")) or \
                (ctype.startswith("application/json") and b'"answer"' in body)
        if method == "PATCH" and status == 204:
            return not body
        if method == "DELETE" and status == 200:
            return not body
    return False


def judge(request: Request, answer: Answer, secret: str) -> list[str]:
    """Problems with one answer (empty: fine)."""
    if answer.error:
        if request.half_close and answer.error == "closed without answer":
            return []
        return [answer.error]
    problems = []
    assert answer.status is not None
    if answer.status >= 500:
        problems.append("HTTP 5xx")
    body = envelope(answer)
    if body is None:
        if not allowed_non_envelope(request, answer):
            problems.append("non-envelope answer")
    else:
        status = body["messageString"]["status"]
        if status == "5000":
            problems.append("status 5000")
        elif request.expect and status not in request.expect and status != BUSY:
            problems.append(f"status {status}, expected {'/'.join(sorted(request.expect))}")
    if MARK.encode() in answer.body or secret.encode() in answer.body:
        problems.append("request bytes echoed in the answer")
    for more in answer.extra:  # what the server made of the bytes after the request
        garbage = Request(b"", "?", "?")
        problems += [f"{p} (second response)" for p in judge(garbage, more, secret)]
    return problems


def answer_label(answer: Answer) -> str:
    if answer.error:
        return answer.error
    body = envelope(answer)
    status = body["messageString"]["status"] if body else "-"
    return f"{answer.status} {status}"


# ---- the run -----------------------------------------------------------------------


@dataclass
class Failure:
    family: str
    problem: str
    description: str
    answer: str  # HTTP status and envelope status, or the transport error
    detail: str = ""


@dataclass
class Report:
    """Everything one run measured; `markdown` renders it."""

    cases: int = 0
    requests: int = 0
    by_family: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)  # "HTTP envelope-status" -> count
    answers_by_family: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Failure] = field(default_factory=list)
    crashes: list[Failure] = field(default_factory=list)
    latencies: list[tuple[float, str, str, str]] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_hwm_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_end_by_process: str = ""
    log_findings: dict[str, list[str]] = field(default_factory=dict)
    log_lines: int = 0
    wall_s: float = 0.0
    setup_failures: int = 0

    def count(self, problem_prefix: str) -> int:
        return sum(f.problem.startswith(problem_prefix) for f in self.failures)

    def failures_by_family(self) -> dict[str, Counter]:
        out: dict[str, Counter] = defaultdict(Counter)
        for f in self.failures + self.crashes:
            out[f.family][f.problem.split(",")[0]] += 1
        return out

    def percentile(self, q: float) -> float:
        values = sorted(t for t, *_ in self.latencies)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(q * len(values)))]


class Fuzzer:
    """Sends cases with bounded concurrency, restarting the service after a crash."""

    def __init__(self, service: ServiceProcess, concurrency: int = 4,
                 timeout_s: float = 60.0, max_restarts: int = 20) -> None:
        self.service = service
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_restarts = max_restarts
        self.report = Report()
        self.ctx = Context(KEY, service.secret)
        self._restart_lock = asyncio.Lock()
        self._gave_up = False
        self._in_flight: dict[int, Case] = {}
        self.sessions: list[tuple[str, str]] = []  # (id, token) of each session made

    async def _send(self, request: Request) -> Answer:
        return await exchange(self.service.port, request, self.timeout_s)

    async def _new_session(self, offered: bool) -> tuple[str, str] | str:
        """A fresh session (signed JSON create, ttl 10 s) and optionally its offer;
        on failure, the answer that refused it."""
        body = json.dumps({**self.ctx.signed(), "ttl": 10, "challenges": 0}).encode()
        answer = await self._send(Request(http("POST", "/v1/sessions",
                                               [("Content-Type", "application/json")], body),
                                          "POST", "/v1/sessions"))
        if answer.status != 201:
            return f"create: {answer_label(answer)}"
        created = json.loads(answer.body)
        sid, token = created["session_id"], created["session_token"]
        self.ctx.credentials.add(token)
        self.sessions.append((sid, token))
        if offered:
            path = f"/v1/sessions/{sid}/whip"
            offer = http("POST", path, [("Authorization", f"Bearer {token}"),
                                        ("Content-Type", "application/sdp")],
                         valid_offer().encode())
            answer = await self._send(Request(offer, "POST", path))
            if answer.status != 201:
                return f"offer: {answer_label(answer)}"
        return sid, token

    async def _check_alive(self, case: Case, answer: Answer) -> bool:
        """After a request: is the service still there? If not, record the crash with
        every case that was in flight (one of them killed it) and restart."""
        if self.service.alive():
            return True
        async with self._restart_lock:
            if self.service.alive():
                return True
            code = self.service.proc.returncode if self.service.proc else None
            suspects = "; ".join(f"{c.family}: {c.description}"
                                 for c in self._in_flight.values())
            self.report.crashes.append(Failure(case.family, "crash", case.description,
                                               f"exit code {code}", f"in flight: {suspects}"))
            if len(self.report.crashes) > self.max_restarts:
                self._gave_up = True
                return False
            await asyncio.to_thread(self.service.start)
        return True

    async def run_case(self, case: Case) -> None:
        self._in_flight[id(case)] = case
        try:
            await self._run_case(case)
        finally:
            del self._in_flight[id(case)]

    async def _run_case(self, case: Case) -> None:
        rep = self.report
        rep.cases += 1
        rep.by_family[case.family] += 1
        ctx = Context(self.ctx.key, self.ctx.secret, credentials=self.ctx.credentials)
        if case.needs:
            generation = self.service.starts
            made = await self._new_session(case.needs == "offered")
            if isinstance(made, str):
                await self._check_alive(case, Answer(error=made))
                if generation != self.service.starts:
                    rep.answers["lost in a crash"] += 1
                    return
                rep.setup_failures += 1
                rep.failures.append(Failure(case.family, "session setup failed",
                                            case.description, made))
                return
            ctx.session_id, ctx.session_token = made
        for request in case.build(ctx):
            generation = self.service.starts
            answer = await self._send(request)
            rep.requests += 1
            if not await self._check_alive(case, answer):
                return
            if answer.error and generation != self.service.starts:
                rep.answers["lost in a crash"] += 1  # the crash is reported, not this
                return
            label = answer_label(answer)
            rep.answers[label] += 1
            rep.answers_by_family[case.family][label] += 1
            rep.latencies.append((answer.elapsed_s, case.family, case.description, label))
            for problem in judge(request, answer, self.service.secret):
                rep.failures.append(Failure(case.family, problem, case.description, label,
                                            _excerpt(answer.body)))

    async def run(self, cases: Iterable[Case]) -> Report:
        iterator: Iterator[Case] = iter(cases)

        async def worker() -> None:
            for case in iterator:
                if self._gave_up:
                    return
                await self.run_case(case)
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        self.report.wall_s = time.monotonic() - started
        return self.report


    async def hang_up(self) -> None:
        """After the run, end every session the harness made as a client does when it
        is done (DELETE), so their peers close now, not at the end of their ttl.
        Sessions the cases ended or that expired answer 404/410: nothing to judge."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(sid: str, token: str) -> None:
            path = f"/v1/sessions/{sid}/whip"
            async with gate:
                await self._send(Request(http("DELETE", path,
                                              [("Authorization", f"Bearer {token}")]),
                                         "DELETE", path))
        await asyncio.gather(*(one(sid, token) for sid, token in self.sessions))


def _excerpt(body: bytes, limit: int = 160) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return re.sub(r"\s+", " ", text)


# ---- the log scan ------------------------------------------------------------------

_WORDS = re.compile(r"[A-Za-z0-9_\-]{20,}")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ ")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")


def _looks_base64(run: str) -> bool:
    """A long run of base64 letters that is data, not a word repeated (a long path of
    'a's from a fuzz case): data mixes cases and digits and uses most of the alphabet."""
    return (any(c.isupper() for c in run) and any(c.islower() for c in run)
            and any(c.isdigit() for c in run) and len(set(run)) >= 24)


def scan_log(text: str, secret: str, credentials: set[str]) -> dict[str, list[str]]:
    """Lines of the service log that hold what must never be logged. A traceback is
    reported as its exception line and the log line that announced it."""
    findings: dict[str, list[str]] = defaultdict(list)
    lowered = {c.lower() for c in credentials}
    announced, in_traceback = "", False
    for line in text.splitlines():
        short = line[:200]
        if secret in line:
            findings["secret"].append(short.replace(secret, "<SECRET>"))
        if any(w in credentials or w.lower() in lowered for w in _WORDS.findall(line)):
            findings["credential (token)"].append(short)
        if any(_looks_base64(m) for m in _BASE64_RUN.findall(line)):
            findings["base64 run"].append(short)
        if MARK in line:
            findings["request bytes (marker)"].append(short)
        if "Bearer " in line:
            findings["bearer header"].append(short)
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace() \
                and not line.startswith("During handling"):
            context = _TIMESTAMP.sub("", announced)[:90]
            findings["traceback"].append(f"{line[:120]} (after: {context})")
            in_traceback = False
        elif not in_traceback and not line[:1].isspace():
            announced = line
    return dict(findings)


# ---- one complete run --------------------------------------------------------------


def in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop in a worker thread: callers (pytest with its
    session loop) keep their own event loop untouched."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def warm_up(ctx: Context, port: int, images: Sequence[bytes]) -> None:
    """Valid requests first, so the baseline RSS is the service at its designed working
    size: warm models, and detector buffers sized for the largest pass a legitimate
    photo makes. Each image as a typeId 21 pair (both model threads decode it and
    search it for faces), and the first (a face) as 3035 too, which loads the liveness
    models; a 3035 of the others would only run the pair's decode and face search
    again. What stays above that after the run is what hostile input left behind."""
    from testing.fuzzcases import signed_verify_form

    async def go() -> None:
        for image in images:
            await exchange(port, signed_verify_form(ctx, "21", {"img1": image, "img2": image},
                                                    False), 120)
        if images:
            await exchange(port, signed_verify_form(ctx, "3035", {"img": images[0]}, False),
                           120)
    in_thread(go())


def open_peers(port: int) -> int | None:
    """The service's open peer connections (its /metrics gauge); None if unreadable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = re.search(r"^service_peer_connections ([0-9.e+]+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else None


def run_fuzz(cases: Iterable[Case], log_path: Path, *, concurrency: int = 4,
             timeout_s: float = 60.0, settle_s: float = 15.0, max_restarts: int = 20,
             warm_images: Sequence[bytes] = ()) -> Report:
    """Start the service, send the cases, settle, measure, stop, scan the log.

    Settling: the harness hangs up the sessions it made and waits until the service
    has no peer connection open (at most `settle_s`), so the final RSS is read once
    nothing a case started is still running."""
    log_path.write_bytes(b"")
    service = ServiceProcess(log_path)
    service.start()
    try:
        fuzzer = Fuzzer(service, concurrency, timeout_s, max_restarts)
        warm_up(fuzzer.ctx, service.port, warm_images)
        assert service.proc is not None
        fuzzer.report.rss_start_mb = tree_rss_mb(service.proc.pid)
        with RssSampler(service) as sampler:
            report = in_thread(fuzzer.run(cases))
            if service.alive():
                in_thread(fuzzer.hang_up())
            # their peers close; memory should come back
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline and service.alive() \
                    and open_peers(service.port) != 0:
                time.sleep(0.2)
        report.rss_peak_mb = sampler.peak_mb
        report.rss_hwm_mb = sampler.peak_hwm_mb
        if service.alive():
            assert service.proc is not None
            report.rss_end_mb = tree_rss_mb(service.proc.pid)
            report.rss_end_by_process = tree_breakdown(service.proc.pid)
        else:
            report.crashes.append(Failure("-", "crash", "died while settling", "-"))
    finally:
        service.stop()
    text = log_path.read_text("utf-8", "replace")
    report.log_lines = text.count("\n")
    report.log_findings = scan_log(text, service.secret, fuzzer.ctx.credentials)
    return report


# ---- Markdown ----------------------------------------------------------------------


def markdown(report: Report, examples: int = 2, slowest: int = 5) -> str:
    """The report as Markdown tables: per family, answers, failures with examples."""
    out = []
    fails = report.failures_by_family()
    lat: dict[str, list[float]] = defaultdict(list)
    for t, fam, *_ in report.latencies:
        lat[fam].append(t)
    out.append("| family | cases | answers (HTTP status) | failures | max s |")
    out.append("|---|---:|---|---|---:|")
    for fam in sorted(report.by_family):
        answers = ", ".join(f"{k}: {v}" for k, v in report.answers_by_family[fam].most_common(6))
        problems = ", ".join(f"{k}: {v}" for k, v in fails.get(fam, Counter()).most_common())
        out.append(f"| {fam} | {report.by_family[fam]} | {answers} | {problems or '0'} | "
                   f"{max(lat[fam], default=0):.2f} |")
    out.append("")
    out.append("| measure | value |")
    out.append("|---|---:|")
    rows = [
        ("cases / requests", f"{report.cases} / {report.requests}"),
        ("crashes (process died)", len(report.crashes)),
        ("HTTP 5xx", report.count("HTTP 5xx")),
        ("status 5000", report.count("status 5000")),
        ("non-envelope answers", report.count("non-envelope")),
        ("unexpected status", report.count("status ") - report.count("status 5000")),
        ("no answer / transport errors", report.count("no answer") + report.count("closed")
         + report.count("connection") + report.count("unparseable")),
        ("echoed request bytes", report.count("request bytes")),
        ("session setup failures", report.setup_failures),
        ("busy (4290) answers", sum(v for k, v in report.answers.items() if k.endswith(BUSY))),
        ("latency p50 / p99 / max (s)", " / ".join(
            f"{report.percentile(q):.3f}" for q in (0.5, 0.99, 1.0))),
        ("RSS start / peak / end (MB, process tree)",
         f"{report.rss_start_mb:.0f} / {report.rss_peak_mb:.0f} / {report.rss_end_mb:.0f}"),
        ("peak VmHWM sum (MB)", f"{report.rss_hwm_mb:.0f}"),
        ("RSS end per process (pid: MB)", report.rss_end_by_process),
        ("log lines", report.log_lines),
        ("log findings", ", ".join(f"{k}: {len(v)}" for k, v in report.log_findings.items())
         or "0"),
        ("wall time (s)", f"{report.wall_s:.0f}"),
    ]
    out += [f"| {k} | {v} |" for k, v in rows]
    if report.latencies:
        out += ["", "| slowest | family | answer | case |", "|---:|---|---|---|"]
        for t, fam, desc, label in sorted(report.latencies, reverse=True)[:slowest]:
            out.append(f"| {t:.2f} s | {fam} | {label} | {desc[:110]} |")
    shown: Counter = Counter()
    lines = []
    for f in report.crashes + report.failures:
        key = (f.family, f.problem.split(",")[0])
        if shown[key] >= examples:
            continue
        shown[key] += 1
        detail = f.detail[:400] if f.problem == "crash" else f.detail[:80]
        lines.append(f"| {f.family} | {f.problem} | {f.answer} | {f.description[:110]} | "
                     f"{detail} |".replace("\n", " "))
    if lines:
        out += ["", "| family | problem | answer | case | body / detail |", "|---|---|---|---|---|"]
        out += lines
    for kind, found in report.log_findings.items():
        out.append(f"\nLog, {kind} ({len(found)} lines), e.g.: `{found[0][:150]}`")
    return "\n".join(out)
