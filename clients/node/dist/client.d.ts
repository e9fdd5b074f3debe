/**
 * The client: `fetch` and `node:crypto`, no dependency. Media are sent as multipart
 * file parts (base64 would grow a body by a third against the 10 MB limit).
 */
import { type Envelope } from "./errors.js";
import { type FaceComparison, type SessionResult, type SilentLiveness, type VideoLiveness } from "./results.js";
/** Image or video: its bytes, or the path of a file holding them. */
export type Media = Uint8Array | ArrayBuffer | Blob | string;
export declare const SUCCESS = "2000";
export declare const PENDING = "2020";
/** The session JSON as the service answers it (POST /v1/sessions). */
export interface SessionJSON {
    session_id: string;
    session_token: string;
    whip_url: string;
    result_url: string;
    events_url?: string;
    expires_at?: string;
    ttl_s?: number;
    challenges?: string[];
    ice_servers?: Record<string, any>[];
}
/**
 * A created session. Keep it server-side; hand the app only `forApp()`, never the API
 * secret. `toJSON()` / `Session.fromJSON()` store it between requests (it holds the
 * session token: store it like a password).
 */
export declare class Session {
    readonly data: Readonly<SessionJSON>;
    constructor(data: Readonly<SessionJSON>);
    static fromJSON(data: SessionJSON): Session;
    get sessionId(): string;
    get sessionToken(): string;
    get whipUrl(): string;
    get resultUrl(): string;
    get eventsUrl(): string;
    get expiresAt(): string;
    get ttlS(): number;
    get challenges(): string[];
    get iceServers(): Record<string, any>[];
    toJSON(): SessionJSON;
    /** What the app or page needs to stream (the web page's `?session=` link takes
     * exactly these): no API key, no secret. */
    forApp(): Pick<SessionJSON, "session_id" | "session_token" | "whip_url" | "result_url" | "ice_servers">;
}
export interface ClientOptions {
    baseUrl: string;
    key: string;
    secret: string;
    /** Bounds each HTTP call (a 30 s video takes seconds to judge on a busy service). */
    timeoutMs?: number;
}
export interface CreateSessionOptions {
    /** The ID portrait (selfie or document photo) the person is compared with. */
    portrait?: Media;
    /** A count (0-6) or a list of actions; default: the service's 3 random ones. */
    challenges?: number | string | string[];
    /** Seconds, 10-600 (default 120). */
    ttl?: number;
    /** The webhook URL that receives the result (on the service's allow-list). */
    callbackUrl?: string;
}
export interface ResultOptions {
    /** Poll until decided (default); false: null while pending. */
    wait?: boolean;
    /** Default: until the session's expiry plus a margin. */
    timeoutMs?: number;
}
/** Waits between result polls: soon at first, then backing off (0.5 s x1.5 up to 4 s). */
export declare function pollDelaysMs(firstMs?: number, factor?: number, maxMs?: number): Generator<number>;
/**
 * The answer's envelope, throwing the ApiError of its status unless it is 2000 or 2020
 * (pending); TransportError when the answer is not the service's JSON.
 */
export declare function parseEnvelope(httpStatus: number, body: string): Envelope;
/** Calls of one API key. */
export declare class VerificationClient {
    #private;
    readonly baseUrl: string;
    readonly timeoutMs: number;
    constructor({ baseUrl, key, secret, timeoutMs }: ClientOptions);
    /** Any typeId, media by field name (img1, img2, img, file): the raw envelope. */
    verify(typeId: number, media: Record<string, Media>): Promise<Envelope>;
    /** typeId 21: are the main faces of the two images the same person? */
    compareFaces(img1: Media, img2: Media): Promise<FaceComparison>;
    /** typeId 3035: an image (silent liveness) or a video (video liveness); the result's
     * `kind` says which the service saw (it tells them by their bytes). */
    checkLiveness(media: Media): Promise<SilentLiveness | VideoLiveness>;
    /** A streaming session. */
    createSession(options?: CreateSessionOptions): Promise<Session>;
    /**
     * The session's decision. With `wait` (default) polls with backoff until it is decided
     * (ResultTimeout after `timeoutMs`); without, null while pending.
     * SessionExpiredError: it ended without a decision.
     */
    result(session: Session, options?: ResultOptions & {
        wait?: true;
    }): Promise<SessionResult>;
    result(session: Session, options: ResultOptions): Promise<SessionResult | null>;
    /** Hang the session up: decided with the video it has (none: no decision). */
    endSession(session: Session): Promise<void>;
}
