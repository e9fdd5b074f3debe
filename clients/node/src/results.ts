/**
 * Typed views of the service's answers, parsed from the vendor envelope's `veritem`
 * descriptions. Every result keeps its `envelope` and `detail`, so nothing the
 * service said is lost when a field is not modelled here.
 */

import type { Envelope } from "./errors.js";

export const LIVE = "Living body";
export const NOT_LIVE = "Non-living body";

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

function items(envelope: Envelope): [string, string][] {
  const info = envelope.infoList?.[0] ?? {};
  return (info.veritem ?? []).map((i: any) => [String(i.desc ?? ""), String(i.content ?? "")]);
}

function detailOf(envelope: Envelope): Record<string, any> {
  const detail = envelope.detail;
  return detail && typeof detail === "object" && !Array.isArray(detail) ? detail : {};
}

function prefixed(list: [string, string][], prefix: string): string | undefined {
  const hit = list.find(([d]) => d.startsWith(prefix));
  return hit ? hit[0].slice(prefix.length) : undefined;
}

export function parseFaceComparison(envelope: Envelope): FaceComparison {
  const list = items(envelope);
  const verdict = prefixed(list, "Decision result:");
  const value = prefixed(list, "Decision value:");
  if ((verdict !== "yes" && verdict !== "no") || value === undefined) {
    throw new TypeError("not a face-comparison answer");
  }
  return { kind: "face_comparison", verdict, samePerson: verdict === "yes",
    value: Number(value), reasons: [], detail: detailOf(envelope), envelope };
}

export function parseSilentLiveness(envelope: Envelope): SilentLiveness {
  const list = items(envelope);
  const verdict = list.map(([d]) => d).find((d) => d === LIVE || d === NOT_LIVE);
  const value = prefixed(list, "Decision value:");
  if (verdict === undefined || value === undefined) {
    throw new TypeError("not a silent-liveness answer");
  }
  const live = verdict === LIVE;
  return { kind: "silent_liveness", verdict, live, value: Number(value),
    reasons: live ? [] : ["silent liveness: presentation attack suspected"],
    detail: detailOf(envelope), envelope };
}

function videoFields(envelope: Envelope): Omit<VideoLiveness, "kind"> {
  const map = new Map(items(envelope));
  const verdict = map.get("Live or not");
  if (verdict === undefined) throw new TypeError("not a video-liveness answer");
  const detail = detailOf(envelope);
  const cues: Cue[] = (Array.isArray(detail.events) ? detail.events : [])
    .filter((e: any) => e && typeof e === "object")
    .map(({ kind, t, ...measures }: any) => ({ kind: String(kind ?? ""), t: Number(t ?? 0),
      measures }));
  return {
    verdict,
    live: verdict === LIVE,
    value: Number(map.get("Decision value") || 0),
    replaced: map.get("Whether there is a replacement") === "yes",
    blinked: map.get("Whether there is blinking") === "yes",
    mouthMoved: map.get("Whether there is a mouth") === "yes",
    reasons: (Array.isArray(detail.reasons) ? detail.reasons : []).map(String),
    cues,
    detail,
    envelope,
  };
}

export function parseVideoLiveness(envelope: Envelope): VideoLiveness {
  return { kind: "video_liveness", ...videoFields(envelope) };
}

/** typeId 3035: the answer's shape says whether the service saw an image or a video. */
export function parseLiveness(envelope: Envelope): SilentLiveness | VideoLiveness {
  return items(envelope).some(([d]) => d === "Live or not")
    ? parseVideoLiveness(envelope) : parseSilentLiveness(envelope);
}

export function parseSessionResult(envelope: Envelope): SessionResult {
  const comparison = items(envelope).some(([d]) => d.startsWith("Decision result:"))
    ? parseFaceComparison(envelope) : null;
  const fields = videoFields(envelope);
  const challenges = (Array.isArray(fields.detail.challenges) ? fields.detail.challenges : [])
    .filter((c: any) => c && typeof c === "object");
  return { kind: "session", ...fields, comparison, challenges,
    passed: fields.live && (comparison === null || comparison.samePerson) };
}
