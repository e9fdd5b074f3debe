/**
 * app.js: the onboarding page served at `/`. It explains the check, takes an optional
 * ID photo, runs one verification with verify.js and shows the result in plain words.
 *
 * Where the session comes from:
 *   - `?session=<base64url of JSON {whip_url, session_token, session_id, result_url}>`
 *     (or the same after `#session=`, which keeps the token out of server logs): a
 *     session your backend created with `POST /v1/sessions`. It is read once and removed
 *     from the address bar. The ID photo picker is hidden: your backend attached it.
 *   - otherwise the demo endpoint `POST /v1/demo/sessions` (enabled only on demo servers).
 *     `?challenges=eyes_closed,turn_left` or `?challenges=1` chooses the prompts (default:
 *     the service's set).
 *
 * `?lang=de` chooses the language (default: the browser's preference, else English);
 * every word comes from the table in messages.js, the page's own under `page`.
 *
 * `<body data-state>` is one of idle | camera | connecting | prompt | deciding | result |
 * error, and `<body data-challenge>` names the prompt on screen, for tests and styling.
 */

import { format, messagesFor } from './messages.js';
import { describeFailure, start, VerifyError } from './verify.js';

const DEMO_ENDPOINT = '/v1/demo/sessions';
// The service refuses requests over 10 MB; base64 adds a third.
const MAX_PORTRAIT_BYTES = 7 * 1024 * 1024;

const $ = (id) => document.getElementById(id);
const body = document.body;
const lang = new URL(window.location.href).searchParams.get('lang');
const M = messagesFor({ lang });
const P = M.page;

/** The page's static words (`data-i18n="page.lead"`, `data-i18n-aria-label=...`) in
 * the chosen language. */
function translatePage() {
  const lookup = (path) => path.split('.').reduce((node, key) => node?.[key], M);
  document.documentElement.lang = M.lang;
  for (const el of document.querySelectorAll('[data-i18n]')) {
    const text = lookup(el.dataset.i18n);
    if (typeof text === 'string') el.textContent = text;
  }
  for (const el of document.querySelectorAll('[data-i18n-aria-label]')) {
    const text = lookup(el.dataset.i18nAriaLabel);
    if (typeof text === 'string') el.setAttribute('aria-label', text);
  }
}
translatePage();

function decodeSessionParam(value) {
  const b64 = value.replace(/-/g, '+').replace(/_/g, '/');
  const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  const session = JSON.parse(new TextDecoder().decode(bytes));
  for (const field of ['whip_url', 'session_token', 'result_url']) {
    if (typeof session[field] !== 'string' || !session[field]) throw new Error(`missing ${field}`);
  }
  return session;
}

/** The integrator's session from the URL (then removed from it), or null. */
function takeSessionFromUrl() {
  const url = new URL(window.location.href);
  const hash = new URLSearchParams(url.hash.slice(1));
  const raw = url.searchParams.get('session') || hash.get('session');
  if (!raw) return { session: null };
  url.searchParams.delete('session');
  hash.delete('session');
  url.hash = hash.toString();
  window.history.replaceState(null, '', url.href);
  try {
    return { session: decodeSessionParam(raw) };
  } catch {
    return { session: null, invalid: true };
  }
}

function challengesFromUrl() {
  const raw = new URL(window.location.href).searchParams.get('challenges');
  if (!raw) return null;
  if (/^\d+$/.test(raw)) return Number(raw);
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

const fromUrl = takeSessionFromUrl();
const challenges = challengesFromUrl();
const integratorSession = fromUrl.session;
// An integrator's session token is single use: once its offer may have been sent, a
// new attempt needs a new link from the integrator.
let sessionConsumed = false;
let portraitFile = null;
let running = null;
// The last challenge_failed message of the current run: the result says what went wrong.
let failure = null;

function setState(state) {
  body.dataset.state = state;
  if (state !== 'prompt') delete body.dataset.challenge;
}

function focusHeading(id) {
  const heading = $(id);
  if (heading) heading.focus({ preventScroll: false });
}

/* ---------- ID photo: file picker and drag and drop ---------- */

function setPortrait(file) {
  $('portrait-error').textContent = '';
  if (file && !file.type.startsWith('image/')) {
    $('portrait-error').textContent = P.notImage;
    return;
  }
  if (file && file.size > MAX_PORTRAIT_BYTES) {
    $('portrait-error').textContent = P.tooLarge;
    return;
  }
  portraitFile = file;
  const preview = $('portrait-preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  if (file) {
    preview.src = URL.createObjectURL(file);
    preview.alt = format(P.photoAlt, { name: file.name });
  } else {
    preview.removeAttribute('src');
    preview.alt = '';
    $('portrait-input').value = '';
  }
  preview.hidden = !file;
  if (file) {
    $('drop-text').textContent = file.name;
  } else {
    const choose = document.createElement('u');
    choose.textContent = P.chooseFile;
    $('drop-text').replaceChildren(P.dropText, choose);
  }
  $('portrait-clear').hidden = !file;
  $('drop').dataset.filled = String(Boolean(file));
}

$('portrait-input').addEventListener('change', (e) => setPortrait(e.target.files[0] || null));
$('portrait-clear').addEventListener('click', () => setPortrait(null));
const drop = $('drop');
['dragenter', 'dragover'].forEach((type) => drop.addEventListener(type, (e) => {
  e.preventDefault();
  drop.dataset.over = 'true';
}));
['dragleave', 'drop'].forEach((type) => drop.addEventListener(type, () => {
  drop.dataset.over = 'false';
}));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  const file = e.dataTransfer?.files?.[0];
  if (file) setPortrait(file);
});
// A photo dropped next to the box should not make the browser navigate away.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

/* ---------- result in plain words ---------- */

function readVeritems(payload) {
  const items = payload?.infoList?.[0]?.veritem || [];
  const facts = {};
  for (const { desc = '', content = '' } of items) {
    if (desc === 'Decision value') facts.liveScore = content;
    else if (desc === 'Live or not') facts.live = content === 'Living body';
    else if (desc === 'Whether there is a replacement') facts.replaced = content === 'yes';
    else if (desc === 'Whether there is blinking') facts.blink = content === 'yes';
    else if (desc === 'Whether there is a mouth') facts.mouth = content === 'yes';
    else if (desc.startsWith('Decision result:')) facts.match = desc.endsWith(':yes');
    else if (desc.startsWith('Decision value:')) facts.matchScore = desc.split(':')[1];
  }
  return facts;
}

function showResult(payload) {
  const status = payload?.messageString?.status;
  const f = readVeritems(payload);
  let verdict;
  let title;
  let text;
  if (status === '4007') { // the network failed the session: no verdict on the person
    verdict = 'fail';
    title = P.networkTitle;
    text = P.networkText;
  } else if (status !== '2000') {
    verdict = 'fail';
    title = P.noDecisionTitle;
    text = format(P.noDecisionText, { reason: payload?.messageString?.value || P.noDecision });
  } else if (f.live && f.match !== false) {
    verdict = 'pass';
    title = P.verified;
    text = f.match ? P.liveAndSame : P.live;
  } else if (f.live) {
    verdict = 'fail';
    title = P.mismatchTitle;
    text = P.mismatch;
  } else if (failure) {
    verdict = 'fail';
    title = P.notLiveTitle;
    const [what, todo] = describeFailure(failure.reason, M);
    text = format(P.failedBecause, { what, todo });
  } else {
    verdict = 'fail';
    title = P.notLiveTitle;
    text = P.notLive;
  }
  if (verdict === 'fail' && integratorSession) {
    text += ` ${P.linkOnceRetry}`;
  }
  $('again').textContent = verdict === 'fail' ? P.retry : P.startAgain;
  $('verdict').dataset.verdict = verdict;
  $('result-title').textContent = title;
  $('result-text').textContent = text;

  const rows = [];
  const yesNo = (v) => (v ? P.yes : P.no);
  const scored = (v, score) => (score ? format(P.withScore, { value: yesNo(v), score }) : yesNo(v));
  if (f.live !== undefined) rows.push([P.factLive, scored(f.live, f.liveScore)]);
  if (f.blink !== undefined) rows.push([P.factBlink, yesNo(f.blink)]);
  if (f.mouth !== undefined) rows.push([P.factMouth, yesNo(f.mouth)]);
  if (f.replaced !== undefined) rows.push([P.factReplaced, yesNo(f.replaced)]);
  const prompts = payload?.detail?.challenges;
  if (Array.isArray(prompts) && prompts.length) {
    const met = prompts.filter((c) => c?.met_at != null).length;
    rows.push([P.factPrompts, format(P.promptsFollowed, { met, total: prompts.length })]);
  }
  if (f.match !== undefined) rows.push([P.factSame, scored(f.match, f.matchScore)]);
  $('facts').replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
  $('payload').textContent = JSON.stringify(payload, null, 2);
  setState('result');
  focusHeading('result-title');
}

function showError(err) {
  const known = err instanceof VerifyError;
  $('error-title').textContent = P.errorTitles[err?.code] || P.errorTitles.other;
  let text = known ? err.message : P.unexpected;
  const canRetry = !integratorSession || (!sessionConsumed && (!known || err.retryable));
  if (integratorSession && !canRetry && (!known || err.retryable)) {
    text += ` ${P.linkOnceNew}`;
  } else if (err?.code === 'session-expired') {
    text += ` ${P.expiredRetry}`;
  }
  $('error-text').textContent = text;
  $('error-detail').textContent = known && err.detail ? format(P.details, { detail: err.detail }) : '';
  body.dataset.error = err?.code || 'unexpected';
  $('retry').hidden = !canRetry;
  setState('error');
  focusHeading('error-title');
  if (!known) console.error(err);
}

/* ---------- one run ---------- */

async function run() {
  if (running) return;
  const abort = new AbortController();
  running = abort;
  delete body.dataset.error;
  failure = null;
  setState('camera');
  try {
    if (integratorSession && sessionConsumed) {
      throw new VerifyError('session-used', M.errors.sessionUsed, { retryable: false });
    }
    const payload = await start({
      sessionUrl: integratorSession || DEMO_ENDPOINT,
      container: $('widget'),
      portrait: integratorSession ? null : portraitFile,
      challenges,
      lang: M.lang,
      signal: abort.signal,
      onEvent: (event) => {
        if (event.type === 'state' && event.state !== 'result') setState(event.state);
        if (event.type === 'state' && event.state !== 'camera') sessionConsumed = Boolean(integratorSession);
        if (event.type === 'challenge') body.dataset.challenge = event.action;
        else if (['challenge_met', 'challenge_failed', 'deciding'].includes(event.type)) delete body.dataset.challenge;
        if (event.type === 'challenge_failed') failure = event;
      },
    });
    showResult(payload);
  } catch (err) {
    if (err?.code === 'aborted' && !(integratorSession && sessionConsumed)) setState('idle');
    else showError(err);
  } finally {
    running = null;
  }
}

$('start').addEventListener('click', run);
$('retry').addEventListener('click', run);
$('again').addEventListener('click', () => {
  if ($('verdict').dataset.verdict === 'fail') {
    run();
    return;
  }
  setState('idle');
  focusHeading('intro-title');
});
$('cancel').addEventListener('click', () => running?.abort());
window.addEventListener('pagehide', () => running?.abort());

if (integratorSession) {
  $('portrait-box').hidden = true;
  $('again').hidden = true;
}
if (fromUrl.invalid) {
  showError(new VerifyError('session-refused', P.linkDamaged, { retryable: false }));
  $('retry').hidden = true;
}
