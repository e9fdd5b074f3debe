"""Exceptions: one class per envelope status the service answers, plus the client's own.

Every refusal of the service is the vendor envelope `{"messageString": {"status",
"value"}}`; `ApiError.from_envelope` turns it into the class of its status, so callers
catch what they can handle (`NoFaceError`: ask for another photo; `RateLimitedError`:
retry later) and let the rest propagate. Each instance carries the envelope status,
its text, the HTTP status and the whole envelope (its `detail` may say more).

A status this client does not know (a newer service) still raises an ApiError with that
status; `retryable` tells whether sending the same call again later can succeed.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VerificationError(Exception):
    """Base of everything this package raises."""


class TransportError(VerificationError):
    """No envelope came back: the connection failed, timed out, or something that is not
    the service (a proxy's error page) answered."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class ResultTimeout(VerificationError):
    """`result()` waited its whole timeout and the session was still pending."""


class WebhookVerificationError(VerificationError):
    """A webhook delivery whose signature or timestamp does not check out: refuse it."""


class ApiError(VerificationError):
    """The service refused the call; `status` is the envelope's `messageString.status`."""

    status: ClassVar[str] = ""
    retryable: ClassVar[bool] = False

    def __init__(self, status: str, value: str, http_status: int,
                 envelope: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {value}")
        self.envelope_status = status
        self.value = value
        self.http_status = http_status
        self.envelope = envelope or {}

    @property
    def detail(self) -> dict[str, Any]:
        detail = self.envelope.get("detail")
        return detail if isinstance(detail, dict) else {}

    @staticmethod
    def from_envelope(http_status: int, envelope: dict[str, Any]) -> ApiError:
        message = envelope.get("messageString") or {}
        status = str(message.get("status", ""))
        value = str(message.get("value", ""))
        cls = ERRORS.get(status, ApiError)
        return cls(status, value, http_status, envelope)


# --- the request's content (4001-4006): fix the request, do not retry it as is ---

class MalformedFieldError(ApiError):
    """4001: a field is missing or malformed (the value names it), or the body is."""
    status = "4001"


class BadMediaError(ApiError):
    """4002: an image or video the service cannot decode, or a bad SDP offer."""
    status = "4002"


class NoFaceError(ApiError):
    """4003: no face in an image."""
    status = "4003"


class SeveralFacesError(ApiError):
    """4004: more than one person where one is required."""
    status = "4004"


class LowQualityError(ApiError):
    """4005: a face too small, blurred, dark or turned to judge (the value says which)."""
    status = "4005"


class UnknownTypeError(ApiError):
    """4006: a typeId the service does not offer."""
    status = "4006"


class NetworkError(ApiError):
    """4007: a streaming session the network failed (lasting freezes or loss; `detail`
    carries `network`): no verdict on the person, so start a new session."""
    status = "4007"
    retryable = True


# --- credentials (4010, 4011) ---

class AuthenticationError(ApiError):
    """4010: unknown key, wrong token or wrong session bearer."""
    status = "4010"


class StaleTimestampError(ApiError):
    """4011: the timestamp is outside the window (check this machine's clock) or the
    identical request was already seen (a replay)."""
    status = "4011"


class PayloadTooLargeError(ApiError):
    """4013: body, image or video over the service's limits."""
    status = "4013"


# --- HTTP-level refusals (HTTP status x 10) and sessions ---

class NotFoundError(ApiError):
    """4040: unknown path or session."""
    status = "4040"


class MethodNotAllowedError(ApiError):
    """4050: wrong method for the path."""
    status = "4050"


class RequestTimeoutError(ApiError):
    """4080: the request was not received in time (a stalled upload)."""
    status = "4080"
    retryable = True


class SessionConflictError(ApiError):
    """4090: the session already has its peer connection."""
    status = "4090"


class SessionExpiredError(ApiError):
    """4100: the session expired or was ended before any decision."""
    status = "4100"


class SessionLostError(ApiError):
    """4101: the replica holding the session stopped; create a new session."""
    status = "4101"


class UnsupportedMediaTypeError(ApiError):
    """4150: a Content-Type the endpoint does not take."""
    status = "4150"


class ExpectationFailedError(ApiError):
    """4170: an `Expect` header the service does not support."""
    status = "4170"


class RateLimitedError(ApiError):
    """4290: too many failed attempts from this address, too many connections, too many
    sessions for the key, or the service is busy: retry later."""
    status = "4290"
    retryable = True


class InternalServerError(ApiError):
    """5000: the service failed; retrying may succeed."""
    status = "5000"
    retryable = True


class StateStoreUnavailableError(ApiError):
    """5030: the service's shared state store is unreachable; retry later."""
    status = "5030"
    retryable = True


ERRORS: dict[str, type[ApiError]] = {
    cls.status: cls for cls in (
        MalformedFieldError, BadMediaError, NoFaceError, SeveralFacesError,
        LowQualityError, UnknownTypeError, NetworkError, AuthenticationError, StaleTimestampError,
        PayloadTooLargeError, NotFoundError, MethodNotAllowedError, RequestTimeoutError,
        SessionConflictError, SessionExpiredError, SessionLostError,
        UnsupportedMediaTypeError, ExpectationFailedError, RateLimitedError,
        InternalServerError, StateStoreUnavailableError)
}
"""Envelope status -> exception class, for every error status the service documents."""
