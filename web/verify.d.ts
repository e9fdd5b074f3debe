/** Type declarations of verify.js, the embeddable client of a streaming session. */

import type { MessageOverrides, Messages, PromptWords } from './messages.js';

/** The session your backend created (POST /v1/sessions) and handed to the page. */
export interface SessionInfo {
  whip_url: string;
  session_token: string;
  session_id: string;
  result_url: string;
  ice_servers?: { urls: string | string[]; username?: string; credential?: string }[];
  expires_at?: string;
  challenges?: string[];
}

/** The vendor envelope of the decision. */
export interface Payload {
  infoList: { veritem: { desc: string; name: null; content: string }[] }[];
  messageString: { status: string; value: string };
  detail?: Record<string, any>;
}

/** What onEvent receives: state changes, the session, every data-channel message. */
export type VerifyEvent =
  | { type: 'state'; state: 'camera' | 'connecting' | 'prompt' | 'deciding' | 'result' }
  | { type: 'session'; session: Omit<SessionInfo, 'session_token'> }
  | { type: 'progress'; hints: string[]; faces: number }
  | { type: 'challenge'; action: string; index: number; total: number; window_ms: number }
  | { type: 'release'; action: string; index: number }
  | { type: 'challenge_met'; action: string; index: number }
  | { type: 'challenge_failed'; action: string; index: number; reason?: string }
  | { type: 'deciding' }
  | { type: 'result'; payload: Payload }
  | { type: 'link'; quality: 'good' | 'weak'; loss: number | null; rtt_ms: number | null;
      fps: number | null }
  | { type: string; [field: string]: unknown };

export interface StartOptions {
  /** The session object from your backend, or the URL of an endpoint that creates one. */
  sessionUrl: SessionInfo | string;
  /** Where the camera preview, the oval and the prompts are drawn. */
  container: HTMLElement;
  /** ID portrait (base64, data: URL, File or Blob); sent only with an endpoint URL. */
  portrait?: string | Blob | null;
  onEvent?: (event: VerifyEvent) => void;
  /** A count or a list of actions (endpoint URL only). */
  challenges?: number | string[] | null;
  /** A camera stream you opened (then not stopped at the end). */
  stream?: MediaStream | null;
  signal?: AbortSignal | null;
  /** 'en' or 'de' shipped; default: the browser's preference. */
  lang?: string | null;
  messages?: MessageOverrides | null;
}

export type VerifyErrorCode =
  | 'camera-denied' | 'no-camera' | 'camera-busy' | 'insecure' | 'unsupported'
  | 'session-refused' | 'session-expired' | 'session-used' | 'busy' | 'network' | 'aborted';

export declare class VerifyError extends Error {
  constructor(code: VerifyErrorCode | string, message: string, options?: {
    status?: number | null; retryable?: boolean; detail?: string | null;
  });
  /** One of VerifyErrorCode. */
  code: VerifyErrorCode | string;
  /** The HTTP status of a refused request, if any. */
  status: number | null;
  /** Whether a new attempt can succeed. */
  retryable: boolean;
  detail: string | null;
}

/** One verification attempt: resolves with the decision's envelope. */
export declare function start(options: StartOptions): Promise<Payload>;
/** GET result_url until decided (202 while running). */
export declare function pollResult(session: SessionInfo, signal?: AbortSignal | null,
  messages?: Messages): Promise<Payload>;
/** base64 (no data: prefix) of a File/Blob, or the string given. */
export declare function portraitBase64(portrait: string | Blob | null): Promise<string | null>;
/** [title, what to do] for a challenge_failed reason. */
export declare function describeFailure(reason: string | undefined,
  messages?: Messages | { failures: Record<string, [string, string]> }): [string, string];
export declare const PROMPTS: Record<string, PromptWords>;
export declare const FAILURES: Record<string, [string, string]>;
export declare const HINTS: Record<string, string>;

/** One measurement of the connection from pc.getStats(); null: not measured yet. */
export interface LinkReading {
  /** Fraction of the video's packets lost (the service's RTCP receiver report), 0..1. */
  loss: number | null;
  /** Round trip, ms. */
  rttMs: number | null;
  /** Frames a second sent. */
  fps: number | null;
  /** The browser's qualityLimitationReason for the sent video. */
  limitedBy: string | null;
}
/** When a reading is weak; `readings` in a row change the quality shown. */
export interface LinkLimits {
  loss: number;
  rttMs: number;
  minFps: number;
  readings: number;
}
/** The quality shown and the run of readings that disagree with it. */
export interface LinkState {
  quality: 'good' | 'weak' | null;
  streak: number;
}
export declare const LINK_LIMITS: Readonly<LinkLimits>;
/** One reading from an RTCStatsReport (or any iterable of stats objects). */
export declare function linkReading(report: RTCStatsReport | Iterable<Record<string, any>>): LinkReading;
/** Whether one reading is too weak (missing measurements count as good). */
export declare function linkIsWeak(reading: Partial<LinkReading>, limits?: LinkLimits): boolean;
/** The quality after one more reading, with hysteresis (`state` null at first). */
export declare function nextLinkState(state: LinkState | null, reading: Partial<LinkReading>,
  limits?: LinkLimits): LinkState;
