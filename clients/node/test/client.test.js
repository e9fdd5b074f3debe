// The Node client against the live service, as an integrator's backend uses it.
// Driven by tests/test_client_node.py, which starts the service, the integrator's app
// (an aiortc WHIP client behind POST $VERIFY_APP_URL/start) and writes the fixtures;
// run by hand with the same environment: node --test test/
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, symlink, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { test } from "node:test";

// the package by its own name, through its `exports`, as an integrator imports it
import {
  ApiError, AuthenticationError, BadMediaError, ERRORS, ExpectationFailedError,
  LowQualityError, MalformedFieldError, MethodNotAllowedError, NoFaceError,
  NotFoundError, PayloadTooLargeError, RateLimitedError, RequestTimeoutError,
  SessionExpiredError, Session, SeveralFacesError, StaleTimestampError, TransportError,
  UnknownTypeError, UnsupportedMediaTypeError, VerificationClient,
  WebhookVerificationError, parseEnvelope, signedFields, verifyWebhook,
} from "verification-client";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name} (tests/test_client_node.py does)`);
  return value;
};
const BASE = env("VERIFY_BASE_URL");
const KEY = env("VERIFY_KEY");
const SECRET = env("VERIFY_SECRET");
const DATA = env("VERIFY_DATA");
const FIXTURES = env("VERIFY_FIXTURES");
const APP = env("VERIFY_APP_URL");
const SAME = ["faces/face_recognition/obama__obama.jpg", "faces/face_recognition/obama__obama1.jpg"];
const OTHER = "faces/face_recognition/biden__biden.jpg";
const client = new VerificationClient({ baseUrl: BASE, key: KEY, secret: SECRET });
const data = (path) => join(DATA, path);
const fixture = (name) => join(FIXTURES, name);

test("face comparison from paths and from bytes", async () => {
  const same = await client.compareFaces(data(SAME[0]), data(SAME[1]));
  assert.equal(same.verdict, "yes");
  assert.ok(same.samePerson && same.value >= 50 && same.value <= 100);
  assert.equal(same.envelope.messageString.status, "2000");
  const other = await client.compareFaces(await readFile(data(SAME[0])),
    new Uint8Array(await readFile(data(OTHER))));
  assert.equal(other.verdict, "no");
  assert.ok(!other.samePerson && other.value < 50);
});

test("liveness of an image and of a video", async () => {
  const image = await client.checkLiveness(data("spoof/silent_face/image_T1.jpg"));
  assert.equal(image.kind, "silent_liveness");
  assert.equal(image.live, image.value >= 50);
  const video = await client.checkLiveness(data("blink/zju/000001M_FBN.mp4"));
  assert.equal(video.kind, "video_liveness");
  assert.ok(video.live && video.blinked && video.reasons.length === 0);
  assert.ok(video.cues.some((c) => c.kind === "blink" && typeof c.t === "number"));
});

async function webhookReceiver() {
  const deliveries = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    deliveries.push({ headers: req.headers, body: Buffer.concat(chunks) });
    res.writeHead(204).end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { deliveries, server, url: `http://127.0.0.1:${server.address().port}/hook` };
}

async function until(check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("a session decided through the client's calls, and its webhook", async () => {
  const hook = await webhookReceiver();
  try {
    const session = await client.createSession({
      portrait: fixture("portrait.jpg"), challenges: 0, ttl: 60, callbackUrl: hook.url,
    });
    assert.deepEqual(session.challenges, []);
    assert.equal(await client.result(session, { wait: false }), null);
    // the backend hands the app what it needs to stream, never the API secret
    const forApp = session.forApp();
    assert.ok(!JSON.stringify(forApp).includes(SECRET));
    const started = await fetch(`${APP}/start`, { method: "POST", body: JSON.stringify(forApp),
      headers: { "Content-Type": "application/json" } });
    assert.equal(started.status, 202);
    const result = await client.result(session, { timeoutMs: 60_000 });
    assert.equal(result.kind, "session");
    assert.ok(["Living body", "Non-living body"].includes(result.verdict));
    assert.equal(result.live, result.reasons.length === 0);
    assert.ok(result.comparison?.samePerson);
    assert.ok(result.detail.ended_by);

    await until(() => hook.deliveries.length > 0);
    const [delivery] = hook.deliveries;
    const webhook = verifyWebhook(delivery.headers, delivery.body, SECRET);
    assert.equal(webhook.webhookId.length, 32);
    assert.deepEqual(webhook.result, result);
    // forgeries: a flipped verdict, another secret, a zero signature, none, a replay
    const body = delivery.body.toString();
    const flipped = body.includes('"Non-living body"')
      ? body.replace('"Non-living body"', '"Living body"')
      : body.replace('"Living body"', '"Non-living body"');
    assert.notEqual(flipped, body);
    const { "x-signature": _, ...unsigned } = delivery.headers;
    const forged = [
      [delivery.headers, Buffer.from(flipped), SECRET],
      [delivery.headers, Buffer.concat([delivery.body, Buffer.from(" ")]), SECRET],
      [delivery.headers, delivery.body, "not-the-secret"],
      [{ ...delivery.headers, "x-signature": "0".repeat(64) }, delivery.body, SECRET],
      [{ ...delivery.headers, "x-signature": "short" }, delivery.body, SECRET],
      [unsigned, delivery.body, SECRET],
      [{ ...delivery.headers, "x-timestamp": String(webhook.timestamp - 1000) },
        delivery.body, SECRET],
    ];
    for (const [headers, raw, secret] of forged) {
      assert.throws(() => verifyWebhook(headers, raw, secret), WebhookVerificationError);
    }
    assert.throws(() => verifyWebhook(delivery.headers, delivery.body, SECRET,
      { now: webhook.timestamp + 301 }), /tolerance/);
    assert.throws(() => verifyWebhook(delivery.headers, JSON.parse(body), SECRET), TypeError);
  } finally {
    hook.server.close();
  }
});

test("a stored session is read back, ended, and reports it ended undecided", async () => {
  const session = await client.createSession({ challenges: 0 });
  const again = Session.fromJSON(JSON.parse(JSON.stringify(session)));
  assert.deepEqual(again.toJSON(), session.toJSON());
  await client.endSession(again);
  await assert.rejects(client.result(again), (err) => err instanceof SessionExpiredError
    && err.envelopeStatus === "4100" && err.httpStatus === 410);
});

test("every status the service can answer has its own exception class", () => {
  const statuses = JSON.parse(env("VERIFY_ERROR_STATUSES"));
  assert.deepEqual(Object.keys(ERRORS).sort(), Object.keys(statuses).sort());
  assert.equal(new Set(Object.values(ERRORS)).size, Object.keys(ERRORS).length);
  for (const [status, httpStatus] of Object.entries(statuses)) {
    const body = JSON.stringify({ infoList: [], messageString: { status, value: "why" } });
    assert.throws(() => parseEnvelope(httpStatus, body), (err) => err instanceof ERRORS[status]
      && err instanceof ApiError && err.envelopeStatus === status && err.value === "why"
      && err.httpStatus === httpStatus);
  }
  for (const status of ["4290", "5000", "5030"]) assert.ok(ERRORS[status].retryable);
  assert.ok(!ERRORS["4010"].retryable);
  assert.throws(() => parseEnvelope(502, "<html>Bad gateway</html>"), TransportError);
  assert.throws(() => parseEnvelope(400, '{"messageString":{"status":"4999","value":"new"}}'),
    (err) => err.constructor === ApiError && err.envelopeStatus === "4999");
});

const rejectsWith = (promise, cls) => assert.rejects(promise, (err) => {
  assert.ok(err instanceof cls, `${err} is not a ${cls.name}`);
  assert.equal(err.envelopeStatus, cls.status);
  return true;
});

test("refusals of the client's own calls throw their exception", async () => {
  const face = await readFile(data(SAME[0]));
  await rejectsWith(client.verify(21, { img1: face }), MalformedFieldError);
  await rejectsWith(client.compareFaces(Buffer.from("plain text, not a photo"), face),
    BadMediaError);
  await rejectsWith(client.compareFaces(face, fixture("blank.png")), NoFaceError);
  await rejectsWith(client.compareFaces(data("faces/face_recognition/two_people.jpg"), face),
    SeveralFacesError);
  await rejectsWith(client.checkLiveness(fixture("blurred.jpg")), LowQualityError);
  await rejectsWith(client.verify(999, { img: face }), UnknownTypeError);
  await rejectsWith(client.compareFaces(fixture("bomb.png"), face), PayloadTooLargeError);
  const wrong = new VerificationClient({ baseUrl: BASE, key: KEY, secret: "wrong secret" });
  await rejectsWith(wrong.compareFaces(face, face), AuthenticationError);
  const fake = Session.fromJSON({ session_id: "nosuchsession", session_token: "t".repeat(32),
    whip_url: `${BASE}/v1/sessions/nosuchsession/whip`,
    result_url: `${BASE}/v1/sessions/nosuchsession/result` });
  await rejectsWith(client.result(fake), NotFoundError);
  await rejectsWith(client.createSession({ challenges: ["dance"] }), MalformedFieldError);
  await rejectsWith(client.createSession({ callbackUrl: "ftp://x/" }), MalformedFieldError);
  const burst = new VerificationClient({ baseUrl: BASE, key: env("VERIFY_BURST_KEY"),
    secret: env("VERIFY_BURST_SECRET") });
  for (let i = 0; i < Number(env("VERIFY_SESSIONS_PER_MINUTE")); i++) {
    await burst.endSession(await burst.createSession({ challenges: 0 }));
  }
  await assert.rejects(burst.createSession({ challenges: 0 }),
    (err) => err instanceof RateLimitedError && err.retryable && err.httpStatus === 429);
  const nowhere = new VerificationClient({ baseUrl: "http://127.0.0.1:9", key: KEY,
    secret: SECRET });
  await assert.rejects(nowhere.compareFaces(face, face), TransportError);
});

/** A live answer to a request no client would send, through the client's parser. */
function parsed(status, body) {
  try {
    parseEnvelope(status, body);
  } catch (err) {
    return err;
  }
  throw new Error(`HTTP ${status} ${body} was not refused`);
}

function rawHttp(method, path, headers, body = "") {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${BASE}${path}`, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { text += chunk; });
      res.on("end", () => resolve([res.statusCode, text]));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Headers promising a body that never comes: 4080 after the body deadline. */
function stalledUpload() {
  const { hostname, port } = new URL(BASE);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(
      "POST /api/verify HTTP/1.1\r\nHost: x\r\nContent-Type: " +
      "application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nkey="));
    let text = "";
    const timer = setTimeout(() => { socket.destroy(); reject(new Error("no answer")); }, 30_000);
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => {
      text += chunk;
      const end = text.indexOf("\r\n\r\n");
      const length = /content-length: *(\d+)/i.exec(text);
      if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) {
        clearTimeout(timer);
        socket.destroy();
        resolve([Number(text.split(" ")[1]), text.slice(end + 4, end + 4 + Number(length[1]))]);
      }
    });
    socket.on("error", reject);
  });
}

test("refusals of requests a client never sends map to their exception", async () => {
  const stale = new URLSearchParams({ ...signedFields(KEY, SECRET, Date.now() / 1000 - 3600),
    typeId: "21" });
  let answer = await fetch(`${BASE}/api/verify`, { method: "POST", body: stale });
  assert.ok(parsed(answer.status, await answer.text()) instanceof StaleTimestampError);
  answer = await fetch(`${BASE}/api/verify`);
  assert.ok(parsed(answer.status, await answer.text()) instanceof MethodNotAllowedError);
  const expect = await rawHttp("POST", "/api/verify", {
    "Content-Type": "application/x-www-form-urlencoded", Expect: "x-unknown" }, "x");
  assert.ok(parsed(...expect) instanceof ExpectationFailedError);
  assert.ok(parsed(...await stalledUpload()) instanceof RequestTimeoutError);
  const session = await client.createSession({ challenges: 0 });
  try {
    answer = await fetch(session.whipUrl, { method: "POST", body: "x", headers: {
      Authorization: `Bearer ${session.sessionToken}`, "Content-Type": "text/plain" } });
    assert.ok(parsed(answer.status, await answer.text()) instanceof UnsupportedMediaTypeError);
  } finally {
    await client.endSession(session);
  }
});

test("the README's Integrating snippet runs as it stands", async () => {
  const packageDir = fileURLToPath(new URL("..", import.meta.url));
  const readme = await readFile(join(packageDir, "../../README.md"), "utf8");
  const code = /<!-- integrating-node -->\n```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, "README.md has no integrating-node block");
  // a backend project with the client installed (npm install ./clients/node: a link)
  const project = await mkdtemp(join(tmpdir(), "integrating-"));
  await mkdir(join(project, "node_modules"));
  await symlink(packageDir, join(project, "node_modules", "verification-client"), "dir");
  await writeFile(join(project, "package.json"), '{"type": "module"}');
  await writeFile(join(project, "backend.js"), code);
  process.env.VERIFY_URL = BASE;
  process.env.VERIFY_KEY = KEY;
  process.env.VERIFY_SECRET = SECRET;
  const backend = await import(pathToFileURL(join(project, "backend.js")).href);
  const hook = await webhookReceiver();
  try {
    const forApp = await backend.startVerification("user-1", fixture("portrait.jpg"), hook.url);
    assert.deepEqual(Object.keys(forApp).sort(),
      ["ice_servers", "result_url", "session_id", "session_token", "whip_url"]);
    const started = await fetch(`${APP}/start`, { method: "POST", body: JSON.stringify(forApp),
      headers: { "Content-Type": "application/json" } });
    assert.equal(started.status, 202);
    await until(() => hook.deliveries.length > 0, 60_000);
    const [delivery] = hook.deliveries;
    const [webhookId, passed] = backend.onWebhook(delivery.headers, delivery.body);
    assert.equal(webhookId.length, 32);
    assert.equal(await backend.outcome("user-1"), passed);
    assert.throws(() => backend.onWebhook(delivery.headers,
      Buffer.concat([delivery.body, Buffer.from(" ")])), WebhookVerificationError);
  } finally {
    hook.server.close();
  }
});
