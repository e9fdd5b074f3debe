"""POST /api/verify: authenticate, dispatch on typeId, answer in the vendor envelope."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from service.api.envelope import (
    SUCCESS,
    Payload,
    comparison_answer,
    decision_fields,
    liveness_answer,
    yes_no,
)
from service.api.forms import FormSettings
from service.api.request import AUTH_FIELDS, Authenticate, VerifyRequest, read_request
from service.errors import UnknownType
from service.judging.compare import CompareSettings, prepare_face
from service.judging.decision import (
    Comparison,
    Decision,
    VideoDecisionSettings,
    compare,
    decide_image,
)
from service.judging.silent import SilentSettings, judge_image
from service.judging.video import analyse_video
from service.liveness.engine import EngineSettings
from service.media.uploads import MediaKind, MediaSettings, sniff
from service.ops.metrics import ENVELOPE_STATUS, TYPE_ID
from service.vision.embedding import cosine
from service.vision.faces import FaceSearchSettings
from service.vision.runtime import ModelRuntime, RuntimeSlot

log = logging.getLogger("service.api")

MEDIA_FIELDS = ("img", "img1", "img2", "file")
# Seconds one clip analysis is assumed to take before the first has been timed: a
# 5-10 s webcam clip measured 1-3 s on one core (bench/video_liveness.py).
VIDEO_FIRST_GUESS_S = 3.0


@dataclass(frozen=True)
class VerifySettings:
    """The sections of the root config that POST /api/verify reads: how its body is
    read, and what the judging use cases behind typeIds 21 and 3035 need (they read the
    sections by the root config's names, which these fields keep). Not a section of its
    own: the composition root (service/app.py) fills it from the root config."""

    max_request_bytes: int
    forms: FormSettings
    media: MediaSettings
    faces: FaceSearchSettings
    compare: CompareSettings
    silent: SilentSettings
    engine: EngineSettings
    video_policy: VideoDecisionSettings


@dataclass(frozen=True)
class VerifyApi:
    """What the handler works with, handed over by the composition root (service/app.py,
    as the app's VERIFY_API): its settings, the authenticator and the models once loaded."""

    config: VerifySettings
    auth: Authenticate
    models: RuntimeSlot

    @property
    def runtime(self) -> ModelRuntime:
        return self.models.runtime


VERIFY_API = web.AppKey("verify_api", VerifyApi)
# A use case's answer: the structured result (what logs read) and its envelope.
Answer = tuple[Decision | Comparison, Payload]
TypeHandler = Callable[[VerifyApi, VerifyRequest], Awaitable[Answer]]


async def face_comparison(state: VerifyApi, req: VerifyRequest) -> Answer:
    """typeId 21: are the main faces of img1 and img2 the same person?"""
    cfg = state.config
    first = req.media_bytes("img1", "file")
    second = req.media_bytes("img2")
    started = time.perf_counter()
    a, b = await asyncio.gather(
        state.runtime.run(prepare_face, state.runtime, first[1], cfg.media, cfg.faces, "img1"),
        state.runtime.run(prepare_face, state.runtime, second[1], cfg.media, cfg.faces,
                          "img2"),
    )
    comparison = compare(cosine(a.embedding, b.embedding), cfg.compare)
    detail = {
        "img1": a.detail(),
        "img2": b.detail(),
        **comparison.to_json(),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return comparison, comparison_answer(comparison, detail)


async def liveness(state: VerifyApi, req: VerifyRequest) -> Answer:
    """typeId 3035: silent liveness for an image, video liveness for a video (by bytes)."""
    cfg = state.config
    _, data = req.media_bytes("img", "file")
    kind = sniff(data)
    started = time.perf_counter()
    if kind is MediaKind.VIDEO:
        # an uploaded clip takes seconds (until one has been timed, assume a few)
        decision = await state.runtime.run(
            analyse_video, state.runtime, data, cfg.media, cfg.engine, cfg.faces, cfg.silent,
            cfg.video_policy, first_guess_s=VIDEO_FIRST_GUESS_S)
    else:
        decision = decide_image(await state.runtime.run(
            judge_image, state.runtime, data, cfg.media, cfg.faces, cfg.silent))
    decision.detail["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return decision, liveness_answer(decision)


TYPE_HANDLERS: dict[int, TypeHandler] = {
    21: face_comparison,
    3035: liveness,
}


async def verify(request: web.Request) -> web.Response:
    request[TYPE_ID] = ""  # counted by typeId and status (service/ops/metrics.py)
    state = request.app[VERIFY_API]
    req = await read_request(request, MEDIA_FIELDS, state.config.max_request_bytes,
                             state.config.forms)
    request[TYPE_ID] = req.fields.get("typeId", "")
    key, timestamp, token, _ = (req.text(name) for name in AUTH_FIELDS)
    await state.auth.verify(request.remote or "-", key, timestamp, token, req.body_digest)
    handler = TYPE_HANDLERS.get(req.type_id())
    if handler is None:
        raise UnknownType(f"unknown typeId {req.fields['typeId'].strip()}; "
                          f"supported: {', '.join(map(str, sorted(TYPE_HANDLERS)))}")
    await state.models.wait_ready()
    started = time.perf_counter()
    result, payload = await handler(state, req)
    _log_answer(req.type_id(), result, time.perf_counter() - started)
    response = web.json_response(payload)
    response[ENVELOPE_STATUS] = SUCCESS  # counted by the metrics middleware
    return response


def _log_answer(type_id: int, result: Decision | Comparison, seconds: float) -> None:
    """The decision line of a verify request, read from the structured result: verdict
    and reason codes, or same person and score (no image, embedding or token)."""
    elapsed_ms = round(seconds * 1000, 1)
    fields: dict[str, object] = {"type_id": type_id, "status": SUCCESS,
                                 "elapsed_ms": elapsed_ms}
    if isinstance(result, Comparison):
        fields.update(same_person=yes_no(result.same), score=result.score)
        summary = f"same person {fields['same_person']} (score {result.score})"
    else:
        fields.update(decision_fields(result), value=round(result.value, 2))
        summary = f"{fields['verdict']} ({'; '.join(result.words) or 'every condition met'})"
        if result.cues is not None:
            fields["cues"] = {"blinked": result.cues.blinked,
                              "mouth_moved": result.cues.mouth_moved,
                              "replaced": result.cues.replaced}
    log.info("typeId %d answered %s in %s ms", type_id, summary, elapsed_ms,
             extra={"fields": fields})
