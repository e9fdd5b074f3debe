"""Large request bodies parsed in worker processes, so the event loop never waits for them.

Why not a thread: parsing a 10 MB body (percent-escapes, base64, the replay digest) is
70-100 ms of CPU here, nearly all of it in C calls that hold the GIL (json.loads of a
10 MB string alone ~13 ms, bytes joins, binascii). In a thread, every time the loop
thread gave up the GIL for a system call it waited for the parser to let go of it:
a ticker on the loop woke up to 17 ms late behind a form being parsed and 35 ms behind a
JSON body. In a process the parsing runs beside the loop; the thread that hands the body
over only sends and receives bytes, which releases the GIL.

The workers are service.media.pool's (a fresh interpreter, nothing inherited, a time
and memory limit per job, replaced when they die), in a pool of their own: they only
run our parsers (service.api.forms) on client bytes, never a native media decoder, and
answer fields and media as plain bytes that the service reads as data.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from aiohttp import web

from service.api.forms import ContentType, FormSettings
from service.api.request import BODY_PARSER, VerifyRequest, parse_request
from service.errors import BadMedia
from service.media.pool import DecoderPool, Part, SandboxSettings
from service.media.uploads import MediaSettings

_MB = 1024 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")


def body_parts(data: bytes, params: tuple[str, dict[str, str], tuple[str, ...], FormSettings]
               ) -> Iterator[Part]:
    """The worker job: the body's replay digest, then each field as bytes (text fields
    UTF-8, media fields decoded from base64 or as uploaded)."""
    mime, ctype_params, media_fields, limits = params
    req = parse_request(data, ContentType(mime, ctype_params), media_fields, limits)
    yield {"digest": req.body_digest}, np.empty(0, np.uint8)
    for name, text in req.fields.items():
        yield {"name": name}, np.frombuffer(text.encode(), np.uint8)
    for name, media in req.media.items():
        yield {"name": name, "media": True}, np.frombuffer(media, np.uint8)


class BodyParser:
    """Worker processes that parse bodies, each used by one thread of a small pool (the
    thread only waits on the worker's socket). The workers' time and memory limits are
    the media decoders' (`media`); bodies reach them up to `max_bytes` (the root
    config's max_request_bytes)."""

    def __init__(self, forms: FormSettings, media: MediaSettings, max_bytes: int) -> None:
        self._limits = forms
        self._sandbox = SandboxSettings(timeout_s=media.decode_timeout_s,
                                      memory_bytes=media.decode_worker_memory_mb * _MB,
                                      max_side=1, max_bytes=max_bytes)
        self._executor = ThreadPoolExecutor(forms.parse_workers,
                                            thread_name_prefix="body-parser")
        self._workers: DecoderPool | None = None
        self._size = forms.parse_workers

    def start(self) -> None:
        self._workers = DecoderPool(self._size, preload=(__name__,))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._workers is not None:
            self._workers.close()

    async def parse(self, body: bytes, ctype: ContentType, media_fields: tuple[str, ...]
                    ) -> VerifyRequest:
        context = contextvars.copy_context()  # the thread logs with the request's id
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, context.run, self._parse, body, ctype, media_fields)

    def _parse(self, body: bytes, ctype: ContentType, media_fields: tuple[str, ...]
               ) -> VerifyRequest:
        assert self._workers is not None, "BodyParser.start() was not called"
        params = (ctype.mime, ctype.params, media_fields, self._limits)
        parts = self._workers.local().run(body_parts, body, params, self._sandbox, "body")
        out = VerifyRequest(fields={})
        for meta, value in parts:
            _read_part(out, meta, value.tobytes())
        if not _DIGEST.fullmatch(out.body_digest):
            raise BadMedia("the body could not be read")
        return out


def _read_part(out: VerifyRequest, meta: dict[str, Any], value: bytes) -> None:
    """One part as the worker sent it, read as data: a malformed answer is refused like
    a worker that broke the protocol (the request answers 4002)."""
    name = meta.get("name")
    if "digest" in meta and isinstance(meta["digest"], str):
        out.body_digest = meta["digest"]
    elif isinstance(name, str) and meta.get("media") is True:
        out.media[name] = value
    elif isinstance(name, str):
        try:
            out.fields[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadMedia("the body could not be read") from None
    else:
        raise BadMedia("the body could not be read")


def add_body_parser(app: web.Application, parser: BodyParser) -> None:
    """Workers started with the app and stopped with it."""
    app[BODY_PARSER] = parser

    async def start(app: web.Application) -> None:
        parser.start()

    async def stop(app: web.Application) -> None:
        parser.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
