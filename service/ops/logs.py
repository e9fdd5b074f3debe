"""Logging set-up: plain text for a terminal, or one JSON object per line for a pipeline.

`SERVICE_LOG_FORMAT=json` (config `log_format`) writes each record as one JSON object:
time (UTC, ISO 8601), level, logger, message, the request id and the session id where
known, and a record's structured `fields` (e.g. the decision line's reasons and
timings). The ids travel in context variables: the request-id middleware sets one per
request (a sane incoming `X-Request-Id`, else a fresh one, echoed in the response), and
the session's handlers and analysis task bind the session id, so every line logged
while serving them carries both without being passed around.

What is logged is chosen where it is logged: paths without query strings (a result
poll's query holds an HMAC token), no headers, no bodies, no images, embeddings, tokens
or secrets. The JSON encoding escapes every control character, so a line is one line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
import sys
import threading
from contextvars import ContextVar
from typing import Any, TextIO

from aiohttp import web

LOG_FORMATS = ("text", "json")
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
SESSION_ID: ContextVar[str | None] = ContextVar("session_id", default=None)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
# An incoming X-Request-Id is kept when it looks like an id (UUIDs, hex, base64url,
# "svc:1234"); anything else (spaces, control characters, 200 bytes) is replaced.
_SANE_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


def bind_session(session_id: str) -> None:
    """Lines logged from here on in this task (a request, a session's analysis) carry
    the session id."""
    SESSION_ID.set(session_id)


def start_task_context(session_id: str) -> None:
    """A session's own task (its analysis) is not a request: it carries the session id
    only, not the id of the request it was started from."""
    REQUEST_ID.set(None)
    SESSION_ID.set(session_id)


class ContextFilter(logging.Filter):
    """Adds the request and session ids of the current context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        session_id = getattr(record, "session_id", None) or SESSION_ID.get()
        record.request_id, record.session_id = request_id, session_id
        ids = [f"{name}={value}" for name, value in (("request", request_id),
                                                     ("session", session_id)) if value]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        created = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "session_id"):
            if getattr(record, name, None):
                entry[name] = getattr(record, name)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str, level: int = logging.INFO,
                      stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one writing `log_format` to `stream`
    (stderr by default); returns that handler. JSON to stderr also wraps what native
    libraries write there (`capture_native_stderr`)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, "
                         f"not {log_format!r}")
    if stream is None and log_format == "json":
        stream = capture_native_stderr()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def capture_native_stderr() -> TextIO:
    """Keep stderr one JSON object per line although native code writes to it directly.

    MediaPipe, TensorFlow Lite and absl print their own lines to file descriptor 2
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU."), outside Python's
    logging. Descriptor 2 becomes a pipe that a thread reads line by line and logs as
    records of the `native` logger; the log handler (and Python's own sys.stderr:
    tracebacks, warnings) writes to the real stderr, returned here. Processes started
    from here (the decoder workers) inherit the pipe, so their native lines are
    wrapped too.
    """
    real = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = real
    native = logging.getLogger("native")

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    native.info("%s", line)

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()
    return real


@web.middleware
async def request_id_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """One id per request, for the log lines it causes and for the client to quote."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _SANE_ID.fullmatch(incoming) else secrets.token_hex(8)
    request[REQUEST_ID_KEY] = request_id
    # aiohttp runs each request in its own task (a copy of the context), so these
    # last for this request only, through its access-log line
    REQUEST_ID.set(request_id)
    SESSION_ID.set(None)
    return await handler(request)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the id goes back on every answer the app makes, streams too."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers.setdefault("X-Request-Id", request_id)
