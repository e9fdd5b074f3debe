/**
 * The two signatures of the service (README "API", "Webhooks").
 *
 * Request token: lowercase hex HMAC-SHA256(secret, key + timestamp), the timestamp in
 * Unix seconds (decimals allowed) within 300 s of the service's clock. An identical
 * request seen twice is refused as a replay, so every call is signed afresh.
 *
 * Webhook: X-Signature = hex HMAC-SHA256(secret, X-Timestamp + "." + raw body), checked
 * in constant time before parsing; old timestamps are refused (replays).
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { WebhookVerificationError } from "./errors.js";
import { parseSessionResult, type SessionResult } from "./results.js";

export function token(secret: string, key: string, timestamp: string): string {
  return createHmac("sha256", secret).update(key + timestamp).digest("hex");
}

/** `key`, `timestamp`, `token` for one call; `now` in Unix seconds. */
export function signedFields(key: string, secret: string, now?: number
): { key: string; timestamp: string; token: string } {
  const timestamp = (now ?? Date.now() / 1000).toFixed(6);
  return { key, timestamp, token: token(secret, key, timestamp) };
}

export function webhookSignature(secret: string, timestamp: string, body: Uint8Array): string {
  return createHmac("sha256", secret).update(timestamp + ".").update(body).digest("hex");
}

/** A verified delivery: deduplicate on `webhookId` (the same on every retry). */
export interface Webhook {
  webhookId: string;
  timestamp: number;
  result: SessionResult;
}

export type HeaderSource =
  | Headers
  | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string {
  let value: string | string[] | undefined | null;
  if (typeof (headers as Headers).get === "function") {
    value = (headers as Headers).get(name);
  } else {
    const lower = name.toLowerCase();
    const hit = Object.entries(headers).find(([k]) => k.toLowerCase() === lower);
    value = hit?.[1];
  }
  if (Array.isArray(value)) value = value[0];
  if (value === undefined || value === null) {
    throw new WebhookVerificationError(`missing header ${name}`);
  }
  return value.trim();
}

/**
 * The delivery's result if `body` (the raw bytes as received: a Buffer/Uint8Array,
 * never re-serialized JSON) was signed by the service with `secret` no more than
 * `toleranceS` seconds from now; otherwise WebhookVerificationError.
 */
export function verifyWebhook(
  headers: HeaderSource, body: Uint8Array, secret: string,
  { toleranceS = 300, now }: { toleranceS?: number; now?: number } = {},
): Webhook {
  if (!(body instanceof Uint8Array)) {
    throw new TypeError("pass the raw body bytes (Buffer or Uint8Array), not parsed JSON");
  }
  const timestamp = header(headers, "X-Timestamp");
  const signature = new TextEncoder().encode(header(headers, "X-Signature"));
  const expected = new TextEncoder().encode(webhookSignature(secret, timestamp, body));
  // timingSafeEqual needs equal lengths; a length mismatch is no secret (hex, 64 chars)
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
    throw new WebhookVerificationError("bad signature");
  }
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("malformed X-Timestamp");
  const sent = Number(timestamp);
  if (Math.abs((now ?? Date.now() / 1000) - sent) > toleranceS) {
    throw new WebhookVerificationError("timestamp outside the tolerance (a replay?)");
  }
  let result: SessionResult;
  try {
    result = parseSessionResult(JSON.parse(Buffer.from(body).toString("utf8")));
  } catch (err) {
    throw new WebhookVerificationError(`signed body is not a session result: ${err}`);
  }
  return { webhookId: header(headers, "X-Webhook-Id"), timestamp: sent, result };
}
