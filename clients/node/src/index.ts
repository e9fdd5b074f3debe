/**
 * Server-side client of the video verification service (Node 18+; tested on 20).
 *
 *   import { VerificationClient, verifyWebhook } from "verification-client";
 *   const client = new VerificationClient({ baseUrl, key, secret });
 *   const session = await client.createSession({ portrait: "id.jpg", callbackUrl });
 *   // hand session.forApp() to the app; then client.result(session) or the webhook
 */
export * from "./errors.js";
export * from "./results.js";
export * from "./signing.js";
export * from "./client.js";
