/**
 * The client: `fetch` and `node:crypto`, no dependency. Media are sent as multipart
 * file parts (base64 would grow a body by a third against the 10 MB limit).
 */

import { readFile } from "node:fs/promises";
import {
  ApiError, ResultTimeout, TransportError, type Envelope,
} from "./errors.js";
import {
  parseFaceComparison, parseLiveness, parseSessionResult,
  type FaceComparison, type SessionResult, type SilentLiveness, type VideoLiveness,
} from "./results.js";
import { signedFields } from "./signing.js";

/** Image or video: its bytes, or the path of a file holding them. */
export type Media = Uint8Array | ArrayBuffer | Blob | string;

export const SUCCESS = "2000";
export const PENDING = "2020";
const USER_AGENT = "verification-client-node/0.1.0";

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
export class Session {
  constructor(readonly data: Readonly<SessionJSON>) {}

  static fromJSON(data: SessionJSON): Session {
    for (const name of ["session_id", "session_token", "whip_url", "result_url"] as const) {
      if (typeof data[name] !== "string") throw new TypeError(`session JSON without ${name}`);
    }
    return new Session({ ...data });
  }

  get sessionId(): string { return this.data.session_id; }
  get sessionToken(): string { return this.data.session_token; }
  get whipUrl(): string { return this.data.whip_url; }
  get resultUrl(): string { return this.data.result_url; }
  get eventsUrl(): string { return this.data.events_url ?? ""; }
  get expiresAt(): string { return this.data.expires_at ?? ""; }
  get ttlS(): number { return this.data.ttl_s ?? 0; }
  get challenges(): string[] { return [...(this.data.challenges ?? [])]; }
  get iceServers(): Record<string, any>[] { return [...(this.data.ice_servers ?? [])]; }

  toJSON(): SessionJSON { return { ...this.data }; }

  /** What the app or page needs to stream (the web page's `?session=` link takes
   * exactly these): no API key, no secret. */
  forApp(): Pick<SessionJSON, "session_id" | "session_token" | "whip_url" | "result_url"
    | "ice_servers"> {
    const { session_id, session_token, whip_url, result_url } = this.data;
    return { session_id, session_token, whip_url, result_url, ice_servers: this.iceServers };
  }
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
export function* pollDelaysMs(firstMs = 500, factor = 1.5, maxMs = 4000): Generator<number> {
  let delay = firstMs;
  for (;;) {
    yield delay;
    delay = Math.min(maxMs, delay * factor);
  }
}

const DEFAULT_RESULT_TIMEOUT_MS = 150_000;
const RESULT_GRACE_MS = 30_000;

/**
 * The answer's envelope, throwing the ApiError of its status unless it is 2000 or 2020
 * (pending); TransportError when the answer is not the service's JSON.
 */
export function parseEnvelope(httpStatus: number, body: string): Envelope {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    data = undefined;
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) {
    throw new TransportError(`HTTP ${httpStatus}: not a JSON answer from the service`,
      httpStatus);
  }
  const envelope = data as Envelope;
  const message = envelope.messageString;
  if (message && typeof message === "object") {
    const status = String(message.status);
    if ((status === SUCCESS || status === PENDING) && httpStatus < 300) return envelope;
    throw ApiError.fromEnvelope(httpStatus, envelope);
  }
  if (httpStatus >= 200 && httpStatus < 300) return envelope; // the session JSON
  throw new TransportError(`HTTP ${httpStatus} without the service's envelope`, httpStatus);
}

function isPending(envelope: Envelope): boolean {
  return String(envelope.messageString?.status) === PENDING;
}

async function mediaBlob(media: Media): Promise<Blob> {
  if (typeof media === "string") return new Blob([new Uint8Array(await readFile(media))]);
  if (media instanceof Blob) return media;
  if (media instanceof ArrayBuffer) return new Blob([media]);
  if (media instanceof Uint8Array) return new Blob([new Uint8Array(media)]);
  throw new TypeError("media must be bytes, a Blob or a path");
}

function challengesField(challenges: number | string | string[]): string {
  if (typeof challenges === "number") return String(challenges);
  return Array.isArray(challenges) ? challenges.join(",") : challenges;
}

/** Calls of one API key. */
export class VerificationClient {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly #key: string;
  readonly #secret: string;

  constructor({ baseUrl, key, secret, timeoutMs = 60_000 }: ClientOptions) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.#key = key;
    this.#secret = secret;
    this.timeoutMs = timeoutMs;
  }

  async #send(method: string, url: string, init: { body?: FormData; token?: string } = {}
  ): Promise<[number, string]> {
    const headers: Record<string, string> = {
      Accept: "application/json", "User-Agent": USER_AGENT,
    };
    if (init.token !== undefined) headers.Authorization = `Bearer ${init.token}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method, headers, body: init.body, redirect: "manual",
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      return [response.status, await response.text()];
    } catch (err) {
      throw new TransportError(`${method} ${url}: ${(err as Error).message ?? err}`);
    }
  }

  async #post(path: string, fields: Record<string, string>, files: Record<string, Media>
  ): Promise<Envelope> {
    const form = new FormData();
    for (const [name, value] of Object.entries({
      ...signedFields(this.#key, this.#secret), ...fields,
    })) form.append(name, value);
    for (const [name, media] of Object.entries(files)) {
      form.append(name, await mediaBlob(media), name);
    }
    return parseEnvelope(...await this.#send("POST", this.baseUrl + path, { body: form }));
  }

  /** Any typeId, media by field name (img1, img2, img, file): the raw envelope. */
  verify(typeId: number, media: Record<string, Media>): Promise<Envelope> {
    return this.#post("/api/verify", { typeId: String(typeId) }, media);
  }

  /** typeId 21: are the main faces of the two images the same person? */
  async compareFaces(img1: Media, img2: Media): Promise<FaceComparison> {
    return parseFaceComparison(await this.verify(21, { img1, img2 }));
  }

  /** typeId 3035: an image (silent liveness) or a video (video liveness); the result's
   * `kind` says which the service saw (it tells them by their bytes). */
  async checkLiveness(media: Media): Promise<SilentLiveness | VideoLiveness> {
    return parseLiveness(await this.verify(3035, { img: media }));
  }

  /** A streaming session. */
  async createSession(options: CreateSessionOptions = {}): Promise<Session> {
    const fields: Record<string, string> = {};
    if (options.challenges !== undefined) fields.challenges = challengesField(options.challenges);
    if (options.ttl !== undefined) fields.ttl = String(options.ttl);
    if (options.callbackUrl !== undefined) fields.callback_url = options.callbackUrl;
    const files: Record<string, Media> = options.portrait === undefined ? {}
      : { img: options.portrait };
    return Session.fromJSON(await this.#post("/v1/sessions", fields, files) as SessionJSON);
  }

  /**
   * The session's decision. With `wait` (default) polls with backoff until it is decided
   * (ResultTimeout after `timeoutMs`); without, null while pending.
   * SessionExpiredError: it ended without a decision.
   */
  result(session: Session, options?: ResultOptions & { wait?: true }): Promise<SessionResult>;
  result(session: Session, options: ResultOptions): Promise<SessionResult | null>;
  async result(session: Session, { wait = true, timeoutMs }: ResultOptions = {}
  ): Promise<SessionResult | null> {
    let waitMs = timeoutMs;
    if (waitMs === undefined) {
      const expires = Date.parse(session.expiresAt);
      waitMs = Number.isNaN(expires) ? DEFAULT_RESULT_TIMEOUT_MS
        : Math.max(0, expires - Date.now()) + RESULT_GRACE_MS;
    }
    const deadline = performance.now() + waitMs;
    for (const delay of pollDelaysMs()) {
      const answer = parseEnvelope(...await this.#send("GET", session.resultUrl,
        { token: session.sessionToken }));
      if (!isPending(answer)) return parseSessionResult(answer);
      if (!wait) return null;
      if (performance.now() + delay > deadline) {
        throw new ResultTimeout(`session ${session.sessionId} still pending`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    throw new Error("unreachable");
  }

  /** Hang the session up: decided with the video it has (none: no decision). */
  async endSession(session: Session): Promise<void> {
    const [status, body] = await this.#send("DELETE", session.whipUrl,
      { token: session.sessionToken });
    if (status !== 200) parseEnvelope(status, body);
  }
}
