"""Server-side client of the video verification service.

    from verification_client import Client, verify_webhook
    client = Client("https://verify.example.com", "my-key", "my-secret")
    session = client.create_session(portrait="id.jpg", callback_url="https://me/hook")
    # hand session.for_app() to the app; then client.result(session) or the webhook
"""

from .aio import AsyncClient
from .client import Client
from .errors import (
    ERRORS,
    ApiError,
    AuthenticationError,
    BadMediaError,
    ExpectationFailedError,
    InternalServerError,
    LowQualityError,
    MalformedFieldError,
    MethodNotAllowedError,
    NetworkError,
    NoFaceError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestTimeoutError,
    ResultTimeout,
    SessionConflictError,
    SessionExpiredError,
    SessionLostError,
    SeveralFacesError,
    StaleTimestampError,
    StateStoreUnavailableError,
    TransportError,
    UnknownTypeError,
    UnsupportedMediaTypeError,
    VerificationError,
    WebhookVerificationError,
)
from .protocol import Media, Session, parse_envelope
from .results import (
    Cue,
    FaceComparison,
    SessionResult,
    SilentLiveness,
    VideoLiveness,
    parse_session_result,
)
from .signing import Webhook, signed_fields, verify_webhook, webhook_signature

__all__ = [
    "ERRORS", "ApiError", "AsyncClient", "AuthenticationError", "BadMediaError", "Client",
    "Cue", "ExpectationFailedError", "FaceComparison", "InternalServerError",
    "LowQualityError", "MalformedFieldError", "Media", "MethodNotAllowedError",
    "NetworkError",
    "NoFaceError", "NotFoundError", "PayloadTooLargeError", "RateLimitedError",
    "RequestTimeoutError", "ResultTimeout", "Session", "SessionConflictError",
    "SessionExpiredError", "SessionLostError", "SessionResult", "SeveralFacesError",
    "SilentLiveness", "StaleTimestampError", "StateStoreUnavailableError",
    "TransportError", "UnknownTypeError", "UnsupportedMediaTypeError",
    "VerificationError", "VideoLiveness", "Webhook", "WebhookVerificationError",
    "parse_envelope", "parse_session_result", "signed_fields", "verify_webhook",
    "webhook_signature",
]
