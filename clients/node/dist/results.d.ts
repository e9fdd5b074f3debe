/**
 * Typed views of the service's answers, parsed from the vendor envelope's `veritem`
 * descriptions. Every result keeps its `envelope` and `detail`, so nothing the
 * service said is lost when a field is not modelled here.
 */
import type { Envelope } from "./errors.js";
export declare const LIVE = "Living body";
export declare const NOT_LIVE = "Non-living body";
/** One liveness cue: kind blink | mouth | turn_left | turn_right | replacement, at
 * `t` seconds into the stream, with its measurements. */
export interface Cue {
    kind: string;
    t: number;
    measures: Record<string, number>;
}
/** typeId 21, or a session's comparison with its portrait. */
export interface FaceComparison {
    kind: "face_comparison";
    verdict: "yes" | "no";
    samePerson: boolean;
    /** 0-100: the estimated probability, in percent, that it is the same person. */
    value: number;
    reasons: string[];
    detail: Record<string, any>;
    envelope: Envelope;
}
/** typeId 3035 with an image. */
export interface SilentLiveness {
    kind: "silent_liveness";
    verdict: string;
    live: boolean;
    value: number;
    reasons: string[];
    detail: Record<string, any>;
    envelope: Envelope;
}
/** typeId 3035 with a video, and the liveness part of a session's result. */
export interface VideoLiveness {
    kind: "video_liveness" | "session";
    verdict: string;
    live: boolean;
    value: number;
    replaced: boolean;
    blinked: boolean;
    mouthMoved: boolean;
    reasons: string[];
    cues: Cue[];
    detail: Record<string, any>;
    envelope: Envelope;
}
/** A streaming session's decision (result_url, the data channel's result, a webhook). */
export interface SessionResult extends VideoLiveness {
    kind: "session";
    /** The comparison with the ID portrait, when the session had one. */
    comparison: FaceComparison | null;
    challenges: Record<string, any>[];
    /** Live, and the same person as the portrait when one was given. */
    passed: boolean;
}
export declare function parseFaceComparison(envelope: Envelope): FaceComparison;
export declare function parseSilentLiveness(envelope: Envelope): SilentLiveness;
export declare function parseVideoLiveness(envelope: Envelope): VideoLiveness;
/** typeId 3035: the answer's shape says whether the service saw an image or a video. */
export declare function parseLiveness(envelope: Envelope): SilentLiveness | VideoLiveness;
export declare function parseSessionResult(envelope: Envelope): SessionResult;
