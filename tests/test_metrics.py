"""GET /metrics: what the Prometheus scrape shows after real API calls and a real session.

One server per module takes vendor API calls of both typeIds (successes and failures)
and one streaming session from a real aiortc client; the scrape is parsed with
prometheus_client's own parser and checked series by series.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from conftest import KEY, SECRET, data_bytes, make_config, start_server, status_of
from prometheus_client.parser import text_string_to_metric_families

from service.judging.decision import (
    CHALLENGES_NOT_DELIVERED,
    CHALLENGES_NOT_MET,
    NO_VIDEO,
    PRESENTATION_ATTACK,
    REPLACED,
    Reason,
    ReasonCode,
)
from service.ops.metrics import STAGES, Metrics
from service.rtc.routes import MANAGER
from testing.client import VerifyClient, signed_fields
from testing.rtc_client import ClipTrack, WhipClient, create_session
from testing.videos import decode_all

CLIP = "blink/zju/000001M_FBN.mp4"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, str]:
    async with http.get(f"{url}/metrics", headers=headers) as resp:
        return resp.status, await resp.text()


@pytest_asyncio.fixture(scope="module")
async def observed(http) -> AsyncIterator[tuple[str, Samples, dict]]:
    """The server's scrape after a known sequence of calls and one session."""
    server = await start_server(make_config(sessions__observation_s=3.0))
    url = str(server.make_url("")).rstrip("/")
    client = VerifyClient(url, KEY, SECRET, http)
    face_a, face_b = data_bytes("faces/deepface/img3.jpg"), data_bytes("faces/deepface/img12.jpg")
    answers = [
        await client.verify(21, img1=face_a, img2=face_b),
        await client.verify(3035, img=data_bytes("spoof/silent_face/image_T1.jpg")),
        await client.verify(3035, img=b"not an image at all"),  # 4002
        await client.verify(77, img=face_a),  # 4006
    ]
    bad = {**signed_fields(KEY, "wrong-secret"), "typeId": "21"}
    async with http.post(f"{url}/api/verify", data=bad) as resp:
        answers.append((resp.status, await resp.json()))  # 4010
    status, session = await create_session(http, url, KEY, SECRET, challenges="0")
    assert status == 201, session
    whip = WhipClient(session, http)
    assert await whip.connect(ClipTrack(decode_all(data_bytes(CLIP)), fps=15)) == 201
    try:
        result = await asyncio.wait_for(whip.result, 60)
    finally:
        await whip.hang_up()
    manager = server.app[MANAGER]
    async with asyncio.timeout(10):  # the decided peer closes after its hang-up delay
        while manager.peers or manager.store.active_count():
            await asyncio.sleep(0.1)
    status, text = await scrape(http, url)
    assert status == 200
    yield text, parse(text), {"answers": answers, "result": result, "session": session}
    await server.close()


def test_verify_requests_are_counted_by_type_id_and_envelope_status(observed):
    _, samples, seen = observed
    assert [status_of(body) for _, body in seen["answers"]] == [
        "2000", "2000", "4002", "4006", "4010"]
    name = "service_verify_requests_total"
    assert value(samples, name, type_id="21", status="2000") == 1
    assert value(samples, name, type_id="3035", status="2000") == 1
    assert value(samples, name, type_id="3035", status="4002") == 1
    assert value(samples, name, type_id="other", status="4006") == 1
    assert value(samples, name, type_id="21", status="4010") == 1
    assert value(samples, "service_verify_duration_seconds_count", type_id="21") == 2
    # every request by route template, never by its concrete path
    assert value(samples, "service_http_requests_total", route="/api/verify",
                 method="POST", status="200") == 2
    assert value(samples, "service_http_requests_total", route="/v1/sessions",
                 method="POST", status="201") == 1


def test_the_session_is_counted_with_its_outcome_and_timings(observed):
    _, samples, seen = observed
    live = seen["result"]["infoList"][0]["veritem"][1]["content"] == "Living body"
    assert value(samples, "service_sessions_total",
                 outcome="live" if live else "not_live") == 1
    # each reason counted once, by its code
    counted = {dict(labels)["reason"]: n for (name, labels), n in samples.items()
               if name == "service_session_failure_reasons_total" and n}
    assert sum(counted.values()) == len(seen["result"]["detail"]["reasons"])
    assert set(counted) <= {code.value for code in ReasonCode}
    assert value(samples, "service_session_decision_seconds_count") == 1
    assert value(samples, "service_session_duration_seconds_count") == 1
    analysed = value(samples, "service_stream_frames_total", outcome="analysed")
    received = value(samples, "service_stream_frames_total", outcome="received")
    dropped = value(samples, "service_stream_frames_total", outcome="dropped")
    assert analysed == seen["result"]["detail"]["frames_analysed"] > 0
    # every received frame was either taken for analysis or replaced by a newer one
    # (the last one may be left in the slot when the stream ends)
    assert received - 1 <= analysed + dropped <= received
    assert value(samples, "service_stream_analysed_fps_count") == 1
    assert value(samples, "service_sessions_active") == 0
    assert value(samples, "service_peer_connections") == 0


def test_every_stage_is_timed(observed):
    _, samples, _ = observed
    counts = {stage: value(samples, "service_stage_duration_seconds_count", stage=stage)
              for stage in STAGES}
    # decode: 2 images of typeId 21, 1 of 3035 and the undecodable bytes; landmarks: one
    # per analysed frame; silent liveness: the 3035 image and the session's best frames
    assert counts["decode"] >= 4
    assert counts["landmarks"] == value(samples, "service_stream_frames_total",
                                        outcome="analysed")
    assert counts["detection"] >= 3 and counts["comparison"] >= 2
    assert counts["silent_liveness"] >= 2


def test_model_pool_and_build_info_are_exposed(observed):
    _, samples, _ = observed
    assert value(samples, "service_model_pool_queue_depth") == 0
    assert value(samples, "service_model_pool_jobs_in_flight") == 0
    assert ("service_model_pool_refusals_total", ()) in samples
    build = [labels for (name, labels), _ in samples.items() if name == "service_build_info"]
    assert len(build) == 1 and dict(build[0])["version"] == "0.1.0"


def test_no_label_names_a_user_a_key_or_a_session(observed):
    text, samples, seen = observed
    session = seen["session"]
    for secret in (KEY, SECRET, session["session_id"], session["session_token"]):
        assert secret not in text
    names = {name for (_, labels) in samples for name, _ in labels}
    assert names <= {"route", "method", "status", "type_id", "outcome", "reason", "stage",
                     "result", "le", "version", "python", "aiohttp", "aiortc",
                     "onnxruntime", "mediapipe"}


async def test_metrics_behind_a_bearer_token_and_refusals_counted(http):
    # max_pending=0: the model pool refuses every job, so the 4290 is the pool's own
    server = await start_server(make_config(metrics__bearer_token="scrape-me",
                                            admission__max_pending=0))
    try:
        url = str(server.make_url("")).rstrip("/")
        assert (await scrape(http, url))[0] == 401
        status, body = await scrape(http, url, Authorization="Bearer wrong")
        assert status == 401 and '"4010"' in body
        client = VerifyClient(url, KEY, SECRET, http)
        status, answer = await client.verify(3035, img=data_bytes("faces/deepface/img3.jpg"))
        assert (status, status_of(answer)) == (429, "4290")
        status, text = await scrape(http, url, Authorization="Bearer scrape-me")
        assert status == 200
        samples = parse(text)
        assert value(samples, "service_model_pool_refusals_total") == 1
        # this app's registry holds only its own requests
        assert value(samples, "service_verify_requests_total", type_id="3035",
                     status="4290") == 1
        assert value(samples, "service_verify_requests_total", type_id="21",
                     status="2000") == 0
    finally:
        await server.close()


async def test_openmetrics_is_served_when_asked_for(http, base_url):
    status, text = await scrape(http, base_url,
                                Accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and text.rstrip().endswith("# EOF")


@pytest.mark.parametrize("reason, words, slug", [
    (Reason.face_not_tracked(0.42), "face tracked in only 42% of frames", "face_not_tracked"),
    (REPLACED, "the face was replaced by another", "replaced"),
    (Reason.identity_unchecked(2), "identity checked fewer than 2 times", "identity_unchecked"),
    (CHALLENGES_NOT_MET, "challenges not met", "challenges_not_met"),
    (CHALLENGES_NOT_DELIVERED, "challenges not delivered", "challenges_not_delivered"),
    (Reason.best_frame_unjudged("face too small"),
     "silent liveness could not judge the best frame (face too small)", "best_frame_unjudged"),
    (PRESENTATION_ATTACK, "silent liveness: presentation attack suspected",
     "presentation_attack"),
    (NO_VIDEO, "no video received", "no_video"),
])
def test_reasons_are_counted_by_a_fixed_set_of_label_values(reason, words, slug):
    assert (reason.words, reason.code.value) == (words, slug)
    metrics = Metrics(reason_codes=[code.value for code in ReasonCode])
    metrics.session_final("decided", "2000", [reason.code, "something new"], 3.0)
    samples = parse(metrics.exposition(None)[0].decode())
    assert value(samples, "service_session_failure_reasons_total", reason=slug) == 1
    assert value(samples, "service_session_failure_reasons_total", reason="other") == 1


def test_session_outcomes_of_errors_expiry_and_ending():
    metrics = Metrics()
    metrics.session_final("decided", "5000", [], 3.0)
    metrics.session_final("decided", "nonsense", [], 3.0)
    metrics.session_final("expired", None, [], None)
    metrics.session_final("ended", None, [], None)
    samples = parse(metrics.exposition(None)[0].decode())
    assert value(samples, "service_sessions_total", outcome="error") == 2
    assert value(samples, "service_session_failure_reasons_total", reason="status_5000") == 1
    assert value(samples, "service_session_failure_reasons_total", reason="other") == 1
    assert value(samples, "service_sessions_total", outcome="expired") == 1
    assert value(samples, "service_sessions_total", outcome="ended") == 1
