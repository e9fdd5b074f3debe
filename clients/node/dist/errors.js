/**
 * Exceptions: one class per envelope status the service answers, plus the client's own.
 * Every refusal is the vendor envelope `{messageString: {status, value}}`;
 * `ApiError.fromEnvelope` gives the class of its status, so callers catch what they
 * can handle (NoFaceError: ask for another photo; RateLimitedError: retry later).
 */
/** Base of everything this package throws. */
export class VerificationError extends Error {
    constructor(message) {
        super(message);
        this.name = new.target.name;
    }
}
/** No envelope came back: connection failed, timed out, or a non-service answer. */
export class TransportError extends VerificationError {
    httpStatus;
    constructor(message, httpStatus) {
        super(message);
        this.httpStatus = httpStatus;
    }
}
/** `result()` waited its whole timeout and the session was still pending. */
export class ResultTimeout extends VerificationError {
}
/** A webhook delivery whose signature or timestamp does not check out: refuse it. */
export class WebhookVerificationError extends VerificationError {
}
/** The service refused the call; `envelopeStatus` is `messageString.status`. */
export class ApiError extends VerificationError {
    envelopeStatus;
    value;
    httpStatus;
    envelope;
    static status = "";
    static retryable = false;
    constructor(envelopeStatus, value, httpStatus, envelope = {}) {
        super(`${envelopeStatus}: ${value}`);
        this.envelopeStatus = envelopeStatus;
        this.value = value;
        this.httpStatus = httpStatus;
        this.envelope = envelope;
    }
    get retryable() {
        return this.constructor.retryable;
    }
    get detail() {
        const detail = this.envelope.detail;
        return detail && typeof detail === "object" ? detail : {};
    }
    static fromEnvelope(httpStatus, envelope) {
        const message = envelope.messageString ?? {};
        const status = String(message.status ?? "");
        const cls = ERRORS[status] ?? ApiError;
        return new cls(status, String(message.value ?? ""), httpStatus, envelope);
    }
}
/** 4001: a field is missing or malformed (the value names it), or the body is. */
export class MalformedFieldError extends ApiError {
    static status = "4001";
}
/** 4002: an image or video the service cannot decode, or a bad SDP offer. */
export class BadMediaError extends ApiError {
    static status = "4002";
}
/** 4003: no face in an image. */
export class NoFaceError extends ApiError {
    static status = "4003";
}
/** 4004: more than one person where one is required. */
export class SeveralFacesError extends ApiError {
    static status = "4004";
}
/** 4005: a face too small, blurred, dark or turned to judge. */
export class LowQualityError extends ApiError {
    static status = "4005";
}
/** 4006: a typeId the service does not offer. */
export class UnknownTypeError extends ApiError {
    static status = "4006";
}
/** 4007: a streaming session the network failed: no verdict on the person; start a new session. */
export class NetworkError extends ApiError {
    static status = "4007";
    static retryable = true;
}
/** 4010: unknown key, wrong token or wrong session bearer. */
export class AuthenticationError extends ApiError {
    static status = "4010";
}
/** 4011: timestamp outside the window (check the clock) or a replayed request. */
export class StaleTimestampError extends ApiError {
    static status = "4011";
}
/** 4013: body, image or video over the service's limits. */
export class PayloadTooLargeError extends ApiError {
    static status = "4013";
}
/** 4040: unknown path or session. */
export class NotFoundError extends ApiError {
    static status = "4040";
}
/** 4050: wrong method for the path. */
export class MethodNotAllowedError extends ApiError {
    static status = "4050";
}
/** 4080: the request was not received in time. */
export class RequestTimeoutError extends ApiError {
    static status = "4080";
    static retryable = true;
}
/** 4090: the session already has its peer connection. */
export class SessionConflictError extends ApiError {
    static status = "4090";
}
/** 4100: the session expired or was ended before any decision. */
export class SessionExpiredError extends ApiError {
    static status = "4100";
}
/** 4101: the replica holding the session stopped; create a new session. */
export class SessionLostError extends ApiError {
    static status = "4101";
}
/** 4150: a Content-Type the endpoint does not take. */
export class UnsupportedMediaTypeError extends ApiError {
    static status = "4150";
}
/** 4170: an `Expect` header the service does not support. */
export class ExpectationFailedError extends ApiError {
    static status = "4170";
}
/** 4290: too many failures, connections or sessions, or the service is busy. */
export class RateLimitedError extends ApiError {
    static status = "4290";
    static retryable = true;
}
/** 5000: the service failed; retrying may succeed. */
export class InternalServerError extends ApiError {
    static status = "5000";
    static retryable = true;
}
/** 5030: the shared state store is unreachable; retry later. */
export class StateStoreUnavailableError extends ApiError {
    static status = "5030";
    static retryable = true;
}
/** Envelope status -> exception class, for every error status the service documents. */
export const ERRORS = Object.freeze(Object.fromEntries([
    MalformedFieldError, BadMediaError, NoFaceError, SeveralFacesError, LowQualityError,
    UnknownTypeError, NetworkError, AuthenticationError, StaleTimestampError, PayloadTooLargeError,
    NotFoundError, MethodNotAllowedError, RequestTimeoutError, SessionConflictError,
    SessionExpiredError, SessionLostError, UnsupportedMediaTypeError,
    ExpectationFailedError, RateLimitedError, InternalServerError,
    StateStoreUnavailableError,
].map((cls) => [cls.status, cls])));
