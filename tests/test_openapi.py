"""The OpenAPI document (service/http/openapi.json): valid OpenAPI 3.1, the same operations as
the app's router, every error status of service/errors.py, and the live server checked
against it by Schemathesis.

Schemathesis generates requests from the document (valid ones and, in its negative
mode, ones that break it) and sends them to the real server on loopback; every answer
must be a non-5xx that the document describes: its status code, content type, headers
and body schema. The vendor fields are signed the real way (a fresh timestamp each
request, so the replay check never sees the same request twice), the session paths get
real sessions and bearer tokens as often as invented ones, so the requests reach the
handlers' parsing and not only the authentication refusals.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
import requests
import schemathesis
from conftest import KEY, SECRET, data_bytes, make_config, start_server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis import checks as core_checks
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from service import errors
from service.app import create_app
from service.http.auth import make_token
from service.http.openapi import DOCUMENT
from service.rtc import remote

# WHIP's bodies are text: sent as such (the generated strings exercise the SDP checks)
schemathesis.serializer.alias(["application/sdp", "application/trickle-ice-sdpfrag"],
                              "text/plain")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Requests per operation and generation mode: 20 routed operations x 2 modes x this,
# ~1,300 requests in ~45 s on the 2-core machine (a 250-example run, ~7,000 requests,
# found nothing more).
EXAMPLES = 40
# Sessions made up front for the generated requests to open: some stay created (only
# DELETE's own may be ended by it), some are ended (their events stream ends at once,
# so a GET on it cannot wait a TTL).
LIVE_SESSIONS, DELETE_SESSIONS, ENDED_SESSIONS = 4, 3, 2
# The operations signed with key/timestamp/token body fields (spec section 1).
SIGNED = {"POST /api/verify", "POST /", "POST /v1/sessions"}
# Real images, base64, some requests carry instead of generated strings: one face (a
# decision), two people (4004).
REAL_IMAGES = [base64.b64encode(data_bytes(p)).decode() for p in (
    "spoof/live_frames/000001M.jpg", "faces/face_recognition/two_people.jpg")]
CHECKS = [core_checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_headers_conformance,
          openapi_checks.response_schema_conformance]


def document() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text())


def documented_operations(doc: dict[str, Any], replicas_only: bool = False
                          ) -> set[tuple[str, str]]:
    """(METHOD, path) of the document's operations: those a single replica routes, or
    (`replicas_only`) those routed only when replicas share state."""
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method, op in item.items()
            if method in HTTP_METHODS and op.get("x-replicas-only", False) == replicas_only}


def test_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()


def test_every_route_is_documented_and_every_documented_operation_is_routed():
    """aiohttp adds HEAD beside each GET (RFC 9110 section 9.3.2: the same answer
    without a body), so HEAD is not listed in the document. The replica-to-replica
    operation is routed only when replicas share state (service/rtc/remote.py)."""
    app = create_app(make_config())
    routed = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.resource is not None}
    heads = {(m, p) for m, p in routed if m == "HEAD"}
    assert {("GET", p) for _, p in heads} <= routed
    assert routed - heads == documented_operations(document())
    assert documented_operations(document(), replicas_only=True) == {
        ("POST", remote.FORWARD_PATH)}


def test_every_error_status_is_documented():
    """Each ApiError of service/errors.py appears with its HTTP status and its envelope
    status in the responses of the document (a new error class must be documented)."""
    doc = document()
    text = json.dumps(doc)
    documented: set[tuple[int, str]] = set()
    for item in doc["paths"].values():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            for code, response in op["responses"].items():
                if "$ref" in response:
                    response = doc["components"]["responses"][response["$ref"].split("/")[-1]]
                for status in _enum_statuses(response):
                    documented.add((int(code), status))
    # the one answer no listed operation gives: a method a path does not list
    documented |= {(405, s) for s in _enum_statuses(
        doc["components"]["responses"]["MethodNotAllowed"])}
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.ApiError)]
    missing = {(c.http_status, c.status) for c in classes} - documented
    assert not missing, f"undocumented (HTTP, envelope) statuses: {sorted(missing)}"
    assert '"2020"' in text and '"2000"' in text  # pending and success


def _enum_statuses(node: Any) -> list[str]:
    """The envelope statuses named by `status: {enum | const}` anywhere under node."""
    found: list[str] = []
    if isinstance(node, dict):
        status = node.get("properties", {}).get("status") if isinstance(
            node.get("properties"), dict) else None
        if isinstance(status, dict):
            found += status.get("enum", []) + ([status["const"]] if "const" in status else [])
        for value in node.values():
            found += _enum_statuses(value)
    elif isinstance(node, list):
        for value in node:
            found += _enum_statuses(value)
    return found


async def test_the_served_document_is_the_file(base_url, http):
    async with http.get(f"{base_url}/openapi.json") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        assert await resp.json() == document()


# --- Schemathesis against the live server ---------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def fuzzed_server() -> AsyncIterator:
    """The real server with limits the generated traffic would otherwise hit first: it
    sends hundreds of deliberately wrong tokens from one address (the lockout would
    answer everything 4290 after 20), creates sessions far faster than 30 per key per
    minute and keeps many created ones open; demo sessions on, so that endpoint's
    success path is reached too. Replay refusal stays on."""
    server = await start_server(make_config(
        auth__max_failed_auth=1_000_000, sessions__per_key_per_minute=1_000_000,
        sessions__max_active=100_000, demo_sessions=True))
    yield server
    await server.close()


async def _sessions(url: str, live: int, ended: int) -> tuple[list[dict], list[dict]]:
    """`live` created sessions and `ended` ones (DELETEd before any offer)."""
    async with aiohttp.ClientSession() as http:
        made = []
        for _ in range(live + ended):
            ts = f"{time.time():.6f}"
            async with http.post(f"{url}/v1/sessions", data={
                    "key": KEY, "timestamp": ts, "token": make_token(SECRET, KEY, ts)}) as r:
                assert r.status == 201, await r.text()
                made.append(await r.json())
        for session in made[live:]:
            async with http.delete(session["whip_url"], headers={
                    "Authorization": f"Bearer {session['session_token']}"}) as r:
                assert r.status == 200
    return made[:live], made[live:]


def _signed(fields: dict[str, Any]) -> dict[str, Any]:
    ts = f"{time.time():.6f}"  # unique per request: never a replay
    return {**fields, "key": KEY, "timestamp": ts, "token": make_token(SECRET, KEY, ts)}


def _prepare(case: Any, data: st.DataObject, pools: dict[str, list[dict]]) -> None:
    """Give a generated case what a real client has, some of the time: valid auth
    fields, a real session id and its bearer token."""
    signable = case.operation.label in SIGNED and isinstance(case.body, dict)
    if signable and data.draw(st.booleans(), label="sign"):
        case.body = _signed(case.body)
        if data.draw(st.booleans(), label="real image"):  # so decisions are reached
            image = data.draw(st.sampled_from(REAL_IMAGES), label="image")
            case.body.update(img=image, img1=image, img2=image)
            if case.operation.label != "POST /v1/sessions":
                case.body["typeId"] = data.draw(st.sampled_from(["21", "3035"]))
    if "session_id" in (case.path_parameters or {}):
        pool = (pools["ended"] if case.path.endswith("/events")
                else pools["delete"] + pools["ended"] if case.method == "DELETE"
                else pools["live"] + pools["ended"])
        choice = data.draw(st.sampled_from(["generated", "real", "real-bearer"]),
                           label="session")
        if choice != "generated":
            session = data.draw(st.sampled_from(pool), label="which")
            case.path_parameters["session_id"] = session["session_id"]
            if choice == "real-bearer":
                case.headers = {**(case.headers or {}),
                                "Authorization": f"Bearer {session['session_token']}"}
            elif case.path.endswith("/result"):
                case.query = _signed(dict(case.query or {}))


def _check(operation: Any, mode: GenerationMode, url: str, http: requests.Session,
           pools: dict[str, list[dict]], seen: Counter[tuple[str, int]]) -> None:
    """EXAMPLES requests of one operation in one generation mode, each validated."""
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(strategy, label="case")
        _prepare(case, data, pools)
        response = case.call_and_validate(base_url=url, session=http, checks=CHECKS,
                                          timeout=30)
        seen[operation.label, response.status_code] += 1

    check()


def _run_schemathesis(url: str, pools: dict[str, list[dict]]
                      ) -> tuple[list[str], Counter[tuple[str, int]]]:
    """In a thread (Schemathesis' transport is blocking; the server runs on the test's
    event loop): every routed operation, positive and negative data."""
    schema = schemathesis.openapi.from_dict(document())
    http = requests.Session()
    failures: list[str] = []
    seen: Counter[tuple[str, int]] = Counter()  # (operation, HTTP status) answered
    not_routed = {f"{m} {p}" for m, p in documented_operations(document(), replicas_only=True)}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in not_routed:  # a single replica: not there
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _check(operation, mode, url, http, pools, seen)
            except Unsatisfiable:  # no parameter or body to break (GET /healthz ...)
                if mode is GenerationMode.POSITIVE:
                    raise
            except (AssertionError, BaseExceptionGroup) as exc:  # one report each, go on
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    return failures, seen


async def test_the_live_server_matches_its_document(fuzzed_server):
    url = str(fuzzed_server.make_url("")).rstrip("/")
    live, ended = await _sessions(url, LIVE_SESSIONS + DELETE_SESSIONS, ENDED_SESSIONS)
    pools = {"live": live[:LIVE_SESSIONS], "delete": live[LIVE_SESSIONS:], "ended": ended}
    failures, seen = await asyncio.to_thread(_run_schemathesis, url, pools)
    assert not failures, "\n\n".join(failures)
    # the signing and the real sessions worked: requests got past authentication
    for reached in (("POST /api/verify", 200), ("POST /v1/sessions", 201),
                    ("GET /v1/sessions/{session_id}/result", 202),
                    ("GET /v1/sessions/{session_id}/events", 200)):
        assert seen[reached], (reached, sorted(seen.items()))
