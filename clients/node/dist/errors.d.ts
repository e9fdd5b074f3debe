/**
 * Exceptions: one class per envelope status the service answers, plus the client's own.
 * Every refusal is the vendor envelope `{messageString: {status, value}}`;
 * `ApiError.fromEnvelope` gives the class of its status, so callers catch what they
 * can handle (NoFaceError: ask for another photo; RateLimitedError: retry later).
 */
export type Envelope = Record<string, any>;
/** Base of everything this package throws. */
export declare class VerificationError extends Error {
    constructor(message: string);
}
/** No envelope came back: connection failed, timed out, or a non-service answer. */
export declare class TransportError extends VerificationError {
    readonly httpStatus?: number | undefined;
    constructor(message: string, httpStatus?: number | undefined);
}
/** `result()` waited its whole timeout and the session was still pending. */
export declare class ResultTimeout extends VerificationError {
}
/** A webhook delivery whose signature or timestamp does not check out: refuse it. */
export declare class WebhookVerificationError extends VerificationError {
}
/** The service refused the call; `envelopeStatus` is `messageString.status`. */
export declare class ApiError extends VerificationError {
    readonly envelopeStatus: string;
    readonly value: string;
    readonly httpStatus: number;
    readonly envelope: Envelope;
    static readonly status: string;
    static readonly retryable: boolean;
    constructor(envelopeStatus: string, value: string, httpStatus: number, envelope?: Envelope);
    get retryable(): boolean;
    get detail(): Record<string, any>;
    static fromEnvelope(httpStatus: number, envelope: Envelope): ApiError;
}
/** 4001: a field is missing or malformed (the value names it), or the body is. */
export declare class MalformedFieldError extends ApiError {
    static readonly status = "4001";
}
/** 4002: an image or video the service cannot decode, or a bad SDP offer. */
export declare class BadMediaError extends ApiError {
    static readonly status = "4002";
}
/** 4003: no face in an image. */
export declare class NoFaceError extends ApiError {
    static readonly status = "4003";
}
/** 4004: more than one person where one is required. */
export declare class SeveralFacesError extends ApiError {
    static readonly status = "4004";
}
/** 4005: a face too small, blurred, dark or turned to judge. */
export declare class LowQualityError extends ApiError {
    static readonly status = "4005";
}
/** 4006: a typeId the service does not offer. */
export declare class UnknownTypeError extends ApiError {
    static readonly status = "4006";
}
/** 4007: a streaming session the network failed: no verdict on the person; start a new session. */
export declare class NetworkError extends ApiError {
    static readonly status = "4007";
    static readonly retryable = true;
}
/** 4010: unknown key, wrong token or wrong session bearer. */
export declare class AuthenticationError extends ApiError {
    static readonly status = "4010";
}
/** 4011: timestamp outside the window (check the clock) or a replayed request. */
export declare class StaleTimestampError extends ApiError {
    static readonly status = "4011";
}
/** 4013: body, image or video over the service's limits. */
export declare class PayloadTooLargeError extends ApiError {
    static readonly status = "4013";
}
/** 4040: unknown path or session. */
export declare class NotFoundError extends ApiError {
    static readonly status = "4040";
}
/** 4050: wrong method for the path. */
export declare class MethodNotAllowedError extends ApiError {
    static readonly status = "4050";
}
/** 4080: the request was not received in time. */
export declare class RequestTimeoutError extends ApiError {
    static readonly status = "4080";
    static readonly retryable = true;
}
/** 4090: the session already has its peer connection. */
export declare class SessionConflictError extends ApiError {
    static readonly status = "4090";
}
/** 4100: the session expired or was ended before any decision. */
export declare class SessionExpiredError extends ApiError {
    static readonly status = "4100";
}
/** 4101: the replica holding the session stopped; create a new session. */
export declare class SessionLostError extends ApiError {
    static readonly status = "4101";
}
/** 4150: a Content-Type the endpoint does not take. */
export declare class UnsupportedMediaTypeError extends ApiError {
    static readonly status = "4150";
}
/** 4170: an `Expect` header the service does not support. */
export declare class ExpectationFailedError extends ApiError {
    static readonly status = "4170";
}
/** 4290: too many failures, connections or sessions, or the service is busy. */
export declare class RateLimitedError extends ApiError {
    static readonly status = "4290";
    static readonly retryable = true;
}
/** 5000: the service failed; retrying may succeed. */
export declare class InternalServerError extends ApiError {
    static readonly status = "5000";
    static readonly retryable = true;
}
/** 5030: the shared state store is unreachable; retry later. */
export declare class StateStoreUnavailableError extends ApiError {
    static readonly status = "5030";
    static readonly retryable = true;
}
type ApiErrorClass = (new (status: string, value: string, httpStatus: number, envelope?: Envelope) => ApiError) & {
    readonly status: string;
    readonly retryable: boolean;
};
/** Envelope status -> exception class, for every error status the service documents. */
export declare const ERRORS: Readonly<Record<string, ApiErrorClass>>;
export {};
