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
import { type SessionResult } from "./results.js";
export declare function token(secret: string, key: string, timestamp: string): string;
/** `key`, `timestamp`, `token` for one call; `now` in Unix seconds. */
export declare function signedFields(key: string, secret: string, now?: number): {
    key: string;
    timestamp: string;
    token: string;
};
export declare function webhookSignature(secret: string, timestamp: string, body: Uint8Array): string;
/** A verified delivery: deduplicate on `webhookId` (the same on every retry). */
export interface Webhook {
    webhookId: string;
    timestamp: number;
    result: SessionResult;
}
export type HeaderSource = Headers | Record<string, string | string[] | undefined>;
/**
 * The delivery's result if `body` (the raw bytes as received: a Buffer/Uint8Array,
 * never re-serialized JSON) was signed by the service with `secret` no more than
 * `toleranceS` seconds from now; otherwise WebhookVerificationError.
 */
export declare function verifyWebhook(headers: HeaderSource, body: Uint8Array, secret: string, { toleranceS, now }?: {
    toleranceS?: number;
    now?: number;
}): Webhook;
