"""Decoder worker processes: native decoders run where a crash cannot take the service down.

Why processes: the image and video parsers (libjpeg, libpng, libtiff, libwebp, FFmpeg) are
C code fed with bytes from any API key holder. A memory error in one of them (issue 10: a
249-byte JPEG 2000 file crashed OpenJPEG inside the service, stopping every session) must
cost one request, not the service. Each model worker thread owns one worker process, as
it owns its models (service.vision.runtime), so decoding jobs never wait for each other.

Why a fresh interpreter (`python -m service.media.pool`), never fork: the service has
threads and native model state; a forked child would inherit locks held by other threads
and a copy of the models. Not multiprocessing's "spawn" either: it re-runs the parent's
main script in every child (a bench script would load the models there). The worker
gets only its end of a socket pair (not the listening socket nor any other descriptor)
and an environment without the SERVICE_* settings, which hold the API secrets.

The job protocol, one job at a time, each message an 8-byte length and its payload:
  service -> worker: pickled (job function, params, memory limit), then the media bytes;
  worker -> service: per decoded image a JSON header {"kind": "part", "meta", "shape"}
  and its raw BGR bytes (read straight into the array), then {"kind": "done"}; a job
  may also send plain bytes as one-dimensional parts (a parsed request body's fields,
  service.api.body_parser), where the caller allows them (SandboxSettings.max_bytes); or
  {"kind": "error", "status", "message"} for bad input; or {"kind": "bug", "type"} when
  our own decoding code failed.
The service never unpickles what a worker sends: the worker handles hostile bytes, so its
answers are read as data (JSON, a byte count checked against a bounded shape).

A worker that dies during a job (SIGSEGV, SIGKILL, the OOM killer), outlives the time
limit or breaks the protocol is killed and replaced at once, and that job answers 4002.
The memory limit (RLIMIT_DATA, set before each job) makes a decompression bomb fail
inside the worker as MemoryError (4013) instead of growing any process without bound.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import ApiError, BadMedia, MalformedField, TooLarge

log = logging.getLogger("service.decoding")

# One decoded image and what the caller needs to know about it (JSON-able).
Part = tuple[dict[str, Any], np.ndarray]
# Runs in the worker: `job(data, params)` yields the parts; module-level, so it pickles
# by name.
Job = Callable[[bytes, Any], Iterator[Part]]

# Imported when a worker starts rather than on its first job.
DECODER_MODULES = ("service.media.images", "service.media.frames")

_LENGTH = struct.Struct("!Q")
_HEADER_MAX_BYTES = 64 * 1024
# Statuses a worker may answer for bad input.
_ERRORS: dict[str, type[ApiError]] = {cls.status: cls
                                      for cls in (BadMedia, TooLarge, MalformedField)}


@dataclass(frozen=True)
class SandboxSettings:
    # Seconds the worker may take for each answer (an image, or the next video frame).
    timeout_s: float
    # RLIMIT_DATA of the worker during the job.
    memory_bytes: int
    # Longest side of any image the worker sends back: the service allocates no more.
    max_side: int
    # Longest one-dimensional (plain bytes) part the worker may send back; 0: none.
    max_bytes: int = 0


class _WorkerLost(Exception):
    """The worker died, timed out or broke the protocol: it is replaced."""


class Decoder:
    """One worker process and the service's end of its socket; one thread uses it at a time."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        self._preload = preload
        self._closed = False
        self._start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def run(self, job: Job, data: bytes, params: object, limits: SandboxSettings,
            what: str) -> Iterator[Part]:
        """The parts `job(data, params)` yields in the worker, as they arrive.

        Raises the worker's BadMedia/TooLarge for bad input, and BadMedia ("the {what}
        could not be decoded") when the worker died, timed out or broke the protocol.
        A caller that stops iterating early gets the worker replaced (it may be mid-job).
        """
        if self._process.poll() is not None:  # died while idle: not this job's fault
            self._restart(f"exited ({self._process.returncode}) while idle")
        try:
            final = yield from self._parts(job, data, params, limits)
        except TimeoutError:
            self._restart(f"took longer than {limits.timeout_s:g} s")
            raise BadMedia(f"the {what} could not be decoded in time") from None
        except (EOFError, OSError) as exc:  # the socket broke: the worker is gone
            self._restart(_death(self._process, exc))
            raise BadMedia(f"the {what} could not be decoded") from None
        except _WorkerLost as exc:
            self._restart(str(exc))
            raise BadMedia(f"the {what} could not be decoded") from None
        except GeneratorExit:  # the caller stopped iterating mid-job
            self._restart("")
            raise
        if final["kind"] == "error":
            raise _error(final["status"], str(final.get("message", "")))
        if final["kind"] == "bug":
            raise RuntimeError(f"decoder job {job.__name__} raised {str(final.get('type'))[:60]}")

    def close(self) -> None:
        self._closed = True
        self._stop(grace_s=1.0)

    def _parts(self, job: Job, data: bytes, params: object, limits: SandboxSettings
               ) -> Generator[Part, None, dict[str, Any]]:
        """Send the job, yield its parts; return its last message (done, error or bug)."""
        self._sock.settimeout(limits.timeout_s)  # per socket call: each answer, each chunk
        _send(self._sock, pickle.dumps((job, params, limits.memory_bytes)))
        _send(self._sock, data)
        while True:
            header = self._receive_header()
            kind = header.get("kind")
            if kind == "part":
                yield header.get("meta", {}), self._receive_pixels(header, limits)
            elif kind == "done" or kind == "bug" or (
                    kind == "error" and header.get("status") in _ERRORS):
                return header
            else:
                raise _WorkerLost("sent an unknown message")

    def _receive_header(self) -> dict[str, Any]:
        size = _receive_length(self._sock)
        if size > _HEADER_MAX_BYTES:
            raise _WorkerLost("sent an oversized header")
        raw = bytearray(size)
        _receive_into(self._sock, memoryview(raw))
        try:
            header = json.loads(raw)
        except ValueError:
            raise _WorkerLost("sent a malformed header") from None
        if not isinstance(header, dict):
            raise _WorkerLost("sent a malformed header")
        return header

    def _receive_pixels(self, header: dict[str, Any], limits: SandboxSettings) -> np.ndarray:
        shape = header.get("shape")
        if not (isinstance(shape, list) and all(isinstance(n, int) for n in shape) and (
                (len(shape) == 3 and shape[2] == 3 and all(0 < n <= limits.max_side
                                                           for n in shape[:2]))
                or (len(shape) == 1 and 0 <= shape[0] <= limits.max_bytes))):
            raise _WorkerLost("sent an image of an unexpected shape")
        image = np.empty(shape, np.uint8)
        if _receive_length(self._sock) != image.nbytes:
            raise _WorkerLost("sent pixels that do not match their shape")
        _receive_into(self._sock, image.data.cast("B"))
        return image

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        # the service's import path, so the worker unpickles the same job functions
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), *self._preload],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        self._sock = ours

    def _stop(self, grace_s: float = 0.0) -> None:
        self._sock.close()  # a worker between jobs reads the end and exits
        try:
            self._process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _restart(self, reason: str) -> None:
        if reason:
            log.warning("decoder worker %s %s; replaced", self._process.pid, reason)
        self._stop()
        if not self._closed:
            self._start()


def _error(status: str, message: str) -> ApiError:
    """The worker's refusal with its message as sent (a MalformedField's message already
    names its field, so it is not built again from a field name)."""
    cls = _ERRORS[status]
    error = cls.__new__(cls)
    ApiError.__init__(error, message)
    return error


def _death(process: subprocess.Popen[bytes], exc: Exception) -> str:
    try:
        code = process.wait(1.0)
    except subprocess.TimeoutExpired:
        return f"stopped answering ({type(exc).__name__})"
    if code < 0:
        return f"died of {signal.Signals(-code).name} during a job"
    return f"exited ({code}) during a job"


class DecoderPool:
    """One decoder per thread that decodes (the model worker threads), started up front
    so the first requests do not wait for a Python interpreter to start."""

    def __init__(self, size: int, preload: tuple[str, ...] = DECODER_MODULES) -> None:
        self._preload = preload
        self._idle = [Decoder(preload) for _ in range(size)]
        self._all = list(self._idle)
        self._lock = threading.Lock()
        self._local = threading.local()

    def local(self) -> Decoder:
        """The calling thread's own decoder."""
        decoder: Decoder | None = getattr(self._local, "decoder", None)
        if decoder is None:
            with self._lock:
                if self._idle:
                    decoder = self._idle.pop()
                else:
                    decoder = Decoder(self._preload)
                    self._all.append(decoder)
            self._local.decoder = decoder
        return decoder

    def pids(self) -> list[int]:
        with self._lock:
            return [d.pid for d in self._all]

    def close(self) -> None:
        with self._lock:
            decoders = list(self._all)
        for decoder in decoders:
            decoder.close()


def _send(sock: socket.socket, payload: bytes | memoryview) -> None:
    sock.sendall(_LENGTH.pack(memoryview(payload).nbytes))
    sock.sendall(payload)


def _receive_length(sock: socket.socket) -> int:
    head = bytearray(_LENGTH.size)
    _receive_into(sock, memoryview(head))
    return int(_LENGTH.unpack(head)[0])


def _receive_into(sock: socket.socket, view: memoryview) -> None:
    while view.nbytes:
        received = sock.recv_into(view)
        if received == 0:
            raise EOFError("the other end closed the socket")
        view = view[received:]


def serve(sock: socket.socket, preload: tuple[str, ...]) -> None:
    """Worker main loop: one job at a time until the service closes its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the service, which closes its end
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file of client data
    # Decoder warnings ("corrupt EXIF data", ...) describe client files: the answer
    # carries what matters, the log stays free of them.
    warnings.simplefilter("ignore")
    for name in preload:
        importlib.import_module(name)
    # From here on the C libraries' own messages about client files ("LZWDecode: Not
    # enough data at scanline 28", ...) go nowhere, for the same reason; the service
    # logs a worker's death. A failed start (above) still shows.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    while True:
        try:
            job, params, memory_bytes = pickle.loads(_receive_message(sock))
            data = bytes(_receive_message(sock))
        except EOFError:
            return
        if hard != resource.RLIM_INFINITY:
            memory_bytes = min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, hard))
        try:
            _answer(sock, job, data, params)
        except (BrokenPipeError, ConnectionResetError):
            return  # the service closed its end mid-job (it stopped reading, or exits)
        del data


def _receive_message(sock: socket.socket) -> bytearray:
    payload = bytearray(_receive_length(sock))
    _receive_into(sock, memoryview(payload))
    return payload


def _answer(sock: socket.socket, job: Job, data: bytes, params: object) -> None:
    try:
        for meta, image in job(data, params):
            pixels = np.ascontiguousarray(image, dtype=np.uint8)
            _send_header(sock, {"kind": "part", "meta": meta, "shape": list(pixels.shape)})
            _send(sock, pixels.data.cast("B"))
    except ApiError as exc:
        _send_header(sock, {"kind": "error", "status": exc.status, "message": exc.value})
    except MemoryError:
        _send_header(sock, {"kind": "error", "status": TooLarge.status,
                            "message": "decoding needs more memory than allowed"})
    except (BrokenPipeError, ConnectionResetError):
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in our decoding code: the service raises it
        _send_header(sock, {"kind": "bug", "type": type(exc).__name__})
    else:
        _send_header(sock, {"kind": "done"})


def _send_header(sock: socket.socket, header: dict[str, Any]) -> None:
    _send(sock, json.dumps(header).encode())


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])), tuple(sys.argv[2:]))
