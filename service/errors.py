"""One exception type per error status of the contract (spec section 1).

Handlers raise these; one middleware (service.app) turns them into the vendor envelope,
so every error path answers the same shape with the documented HTTP status.
"""

from __future__ import annotations


class ApiError(Exception):
    status = "5000"
    http_status = 500
    message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.value = message or self.message


class MalformedField(ApiError):
    status, http_status, message = "4001", 400, "missing or malformed field"

    def __init__(self, field: str, problem: str = "missing", hint: str = "") -> None:
        super().__init__(f"{problem} field: {field}" + (f" ({hint})" if hint else ""))
        self.field = field


class BadMedia(ApiError):
    status, http_status, message = "4002", 400, "unsupported or undecodable image or video"


class NoFace(ApiError):
    status, http_status, message = "4003", 200, "no face found"


class SeveralFaces(ApiError):
    status, http_status, message = "4004", 200, "more than one face where one is required"


class LowQuality(ApiError):
    status, http_status, message = "4005", 200, "face too small or image quality too low"


class NetworkUnstable(ApiError):
    """A streaming session the network failed (service/rtc/stalls.py): no verdict on
    the person; the client retries."""

    status, http_status, message = "4007", 200, "network: the connection was too unstable"


class UnknownType(ApiError):
    status, http_status, message = "4006", 400, "unknown typeId"


class BadCredentials(ApiError):
    status, http_status, message = "4010", 401, "unknown key or bad token"


class StaleTimestamp(ApiError):
    status, http_status, message = "4011", 401, "timestamp outside the allowed window"


class TooLarge(ApiError):
    status, http_status, message = "4013", 413, "payload too large"


class UnsupportedMediaType(ApiError):
    status, http_status, message = "4150", 415, "unsupported Content-Type"


class RateLimited(ApiError):
    status, http_status, message = "4290", 429, "rate limited"


class InternalError(ApiError):
    status, http_status, message = "5000", 500, "internal error"


# --- streaming sessions (our extension, spec section 2): HTTP semantics of WHIP ---


class SessionNotFound(ApiError):
    status, http_status, message = "4040", 404, "unknown session"


class SessionConflict(ApiError):
    status, http_status, message = "4090", 409, "the session already has its peer connection"


class SessionExpired(ApiError):
    status, http_status, message = "4100", 410, "the session has expired"


class SessionLost(ApiError):
    """Spec 2.1: the replica that held the session's peer connection stopped."""

    status, http_status, message = "4101", 410, "session lost"


# --- several replicas (spec 2.1) ---


class StateStoreUnavailable(ApiError):
    """The shared state store (Redis) cannot be reached; the request may be retried."""

    status, http_status, message = "5030", 503, "state store unavailable"


# --- HTTP-level refusals (service/http/server.py): the HTTP status kept and, where the
# spec has no code of its own, the envelope status = HTTP status x 10 (as 4040 above) ---


class MalformedRequest(ApiError):
    status, http_status, message = "4001", 400, "malformed HTTP request"


class NotFound(ApiError):
    status, http_status, message = "4040", 404, "no such endpoint"


class MethodNotAllowed(ApiError):
    status, http_status, message = "4050", 405, "method not allowed on this endpoint"


class RequestTimeout(ApiError):
    status, http_status, message = "4080", 408, "request not received in time"


class ExpectationFailed(ApiError):
    status, http_status, message = "4170", 417, "unsupported Expect header"
