/**
 * verify.js: the embeddable client of a streaming verification session (ES module,
 * no dependencies, no build step).
 *
 *   import { start } from './verify.js';
 *   const payload = await start({ sessionUrl, container, portrait, onEvent });
 *
 * sessionUrl  Either the session object your backend got from `POST /v1/sessions`
 *             ({whip_url, session_token, session_id, result_url, ice_servers?, expires_at?,
 *             challenges?}), or the URL (string) of an endpoint that creates one when
 *             POSTed `{"challenges", "portrait"}` as JSON, e.g. the demo endpoint
 *             `/v1/demo/sessions`.
 * container   Element in which the camera preview (mirrored), the face oval, the
 *             current prompt with an animation of what to do and the positioning hints
 *             are drawn (inside a shadow root, so the host page's CSS does not leak in).
 * portrait    Optional ID portrait: base64 string, data: URL, or a File/Blob. Only sent
 *             when sessionUrl is an endpoint URL; a session object already carries the
 *             portrait your backend attached.
 * onEvent     Optional callback, called with:
 *               {type: 'state', state}  state: camera | connecting | prompt | deciding | result
 *               {type: 'session', session}  the session in use (token removed)
 *               and every data-channel message as received (spec section 2.1):
 *               {type: 'progress', hints, faces},
 *               {type: 'challenge', action, index, total, window_ms},
 *               {type: 'release', action, index},
 *               {type: 'challenge_met', action, index},
 *               {type: 'challenge_failed', action, index, reason},
 *               {type: 'deciding'}, {type: 'result', payload};
 *               and, from the browser's own measurements (see linkReading below):
 *               {type: 'link', quality: 'good' | 'weak', loss, rtt_ms, fps} when the
 *               connection's quality changes (the first measurement included).
 *             Fields this version does not know are passed on and otherwise ignored.
 * Other options: challenges (count or list, endpoint URL only; default: the service's
 * choice), stream (a MediaStream you already opened; it is then not stopped at the
 * end), signal (an AbortSignal that cancels the session), lang (the language of every
 * word shown or said: 'en' or 'de' shipped; default: the browser's preference) and
 * messages (your own words: any part of the table in messages.js, same shape, e.g.
 * {widget: {done: 'Thanks!'}}, or a whole table for a language not shipped).
 *
 * Call start() from a click (or key) handler: the camera permission prompt expects one,
 * and the tone that tells a person with closed eyes to open them may only play in a
 * page the person has interacted with (browsers' autoplay rules).
 *
 * Resolves with the vendor envelope of the decision ({infoList, messageString, detail}),
 * from the data channel's `result` message, or from `GET result_url` (Bearer token) when
 * the data channel closes before it. Rejects with a VerifyError whose `code` is one of
 * camera-denied, no-camera, camera-busy, insecure, unsupported, session-refused,
 * session-expired, session-used, busy, network, aborted; `message` is plain words
 * for the person in front of the camera and `retryable` says whether a new attempt
 * can succeed.
 *
 * Signalling is WHIP (RFC 9725) without trickle ICE: one offer with all candidates,
 * one answer; the `Location` resource is DELETEd at the end.
 */

import { format, MESSAGES, messagesFor } from './messages.js';

/** The English words, per action, failure reason and hint (messages.js has every
 * language; these exports stay for pages that read them). */
export const PROMPTS = MESSAGES.en.prompts;
export const FAILURES = MESSAGES.en.failures;
export const HINTS = MESSAGES.en.hints;

/** [title, what to do] for a challenge_failed message; an older service sends no reason. */
export function describeFailure(reason, messages = MESSAGES.en) {
  return messages.failures[reason] || messages.failures.too_late;
}

const ICE_GATHERING_MAX_MS = 3000;
const CONNECT_TIMEOUT_MS = 20000;
const DISCONNECTED_GRACE_MS = 5000;
const RESULT_POLL_MS = 1000;
const RESULT_POLL_MAX_MS = 60000;
// A prompt turns into "hold" this long after it appeared: about a person's reaction time
// (0.3-1.2 s), so by then most have started; the hold line still names the action.
const HOLD_AFTER_MS = 1000;
// How often the connection is measured (pc.getStats). Browsers send RTCP sender reports
// about once a second and aiortc answers with receiver reports every 0.5-1.5 s, so a
// shorter period would mostly read the same report twice.
const LINK_POLL_MS = 2000;

/**
 * When the connection is too weak for a check, per reading of linkReading(). A person
 * is told only when a reading crosses one of these `readings` times in a row, and the
 * note goes away only after as many good readings in a row: one burst of loss (a
 * microwave, a lift) does not flash it.
 */
export const LINK_LIMITS = Object.freeze({
  // Fraction of the video's packets the service did not receive (its RTCP receiver
  // report). The README's network bench (Unreliable networks): simulated honest people
  // passed 6 of 6 sessions at ~3.7% loss, 5 of 6 at 5% (+150 ms jitter, too_late) and
  // 3 of 6 at ~10.5% (two answered `network`): from 5% on the connection fails checks.
  loss: 0.05,
  // Round trip in ms: every reaction looks that much later to the service (the prompt's
  // way down, the video's way up). A slow reaction (1.2 s) plus 0.5 s leaves 0.3 s of
  // the 2.0 s release window: less than one lost message's retransmission (0.3-0.5 s).
  rttMs: 500,
  // Frames a second the browser sends. The service analyses 10 a second; under 5 a
  // short blink (0.1-0.4 s) can fall between two frames. Counted only when the browser
  // says bandwidth is what limits the video (or does not say): a slow device or a dark
  // camera is not the connection.
  minFps: 5,
  // Readings in a row (LINK_POLL_MS apart) before the quality shown changes.
  readings: 2,
});

function videoStats(stats, type) {
  return stats.type === type && (stats.kind || stats.mediaType) === 'video';
}

/**
 * One reading of the connection from an RTCStatsReport (or any iterable of stats
 * objects, https://www.w3.org/TR/webrtc-stats/): `loss` (0..1), the service's
 * `fractionLost` from its last RTCP receiver report (remote-inbound-rtp, RFC 3550
 * section 6.4.2); `rttMs`, the round trip from that report; `fps`, the frames a second
 * sent (outbound-rtp `framesPerSecond`); `limitedBy`, the browser's
 * `qualityLimitationReason` for the sent video ('bandwidth', 'cpu', 'none', 'other').
 * Each is null until the browser has measured it.
 */
export function linkReading(report) {
  const reading = { loss: null, rttMs: null, fps: null, limitedBy: null };
  const all = typeof report?.values === 'function' ? report.values() : report || [];
  for (const stats of all) {
    if (videoStats(stats, 'remote-inbound-rtp')) {
      if (typeof stats.fractionLost === 'number') reading.loss = stats.fractionLost;
      if (typeof stats.roundTripTime === 'number') reading.rttMs = stats.roundTripTime * 1000;
    } else if (videoStats(stats, 'outbound-rtp')) {
      if (typeof stats.framesPerSecond === 'number') reading.fps = stats.framesPerSecond;
      if (typeof stats.qualityLimitationReason === 'string') {
        reading.limitedBy = stats.qualityLimitationReason;
      }
    }
  }
  return reading;
}

/** Whether one reading says the connection is too weak (LINK_LIMITS); what was not
 * measured yet (null) counts as good. */
export function linkIsWeak(reading, limits = LINK_LIMITS) {
  const { loss = null, rttMs = null, fps = null, limitedBy = null } = reading || {};
  if (loss !== null && loss >= limits.loss) return true;
  if (rttMs !== null && rttMs >= limits.rttMs) return true;
  const byBandwidth = limitedBy === null || limitedBy === 'bandwidth';
  return fps !== null && fps < limits.minFps && byBandwidth;
}

/**
 * The quality shown after one more reading, with hysteresis: `state` is the previous
 * answer ({quality: null | 'good' | 'weak', streak}; null at first). A first measured
 * reading that is good says 'good' at once (nothing is shown for it); turning 'weak',
 * and back, takes `limits.readings` readings in a row. A reading with nothing measured
 * changes nothing.
 */
export function nextLinkState(state, reading, limits = LINK_LIMITS) {
  const quality = state?.quality ?? null;
  const { loss = null, rttMs = null, fps = null } = reading || {};
  if (loss === null && rttMs === null && fps === null) return { quality, streak: state?.streak ?? 0 };
  const weak = linkIsWeak(reading, limits);
  if (!weak && quality === null) return { quality: 'good', streak: 0 };
  if (weak === (quality === 'weak')) return { quality, streak: 0 };
  const streak = (state?.streak ?? 0) + 1;
  if (streak < limits.readings) return { quality, streak };
  return { quality: weak ? 'weak' : 'good', streak: 0 };
}

export class VerifyError extends Error {
  constructor(code, message, { status = null, retryable = true, detail = null } = {}) {
    super(message);
    this.name = 'VerifyError';
    this.code = code;
    this.status = status;
    this.retryable = retryable;
    this.detail = detail;
  }
}

/** Plain-words error for a refused HTTP request, from its status and vendor envelope. */
function httpError(what, response, envelope, M) {
  const status = response.status;
  const said = envelope?.messageString?.value;
  const detail = said ? `${status} ${said}` : `${status} ${response.statusText}`;
  if (status === 410) {
    return new VerifyError('session-expired', M.errors.sessionExpired, { status, detail });
  }
  if (status === 409) {
    return new VerifyError('session-used', M.errors.sessionUsed,
      { status, detail, retryable: false });
  }
  if (status === 429) {
    return new VerifyError('busy', M.errors.busy, { status, detail });
  }
  if (status === 401 || status === 403) {
    return new VerifyError('session-refused', M.errors.linkInvalid,
      { status, detail, retryable: false });
  }
  if (status === 404 && what === 'create') {
    return new VerifyError('session-refused', M.errors.noDemo, { status, detail });
  }
  if (status === 404) {
    return new VerifyError('session-refused', M.errors.sessionGone, { status, detail });
  }
  if (status >= 500) {
    return new VerifyError('network', M.errors.serviceProblem, { status, detail });
  }
  return new VerifyError('session-refused', format(M.errors.refused, { detail }),
    { status, detail });
}

function cameraError(err, M) {
  const name = err?.name || '';
  if (name === 'NotAllowedError' || name === 'PermissionDeniedError') {
    return new VerifyError('camera-denied', M.errors.cameraDenied);
  }
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') {
    return new VerifyError('no-camera', M.errors.noCamera);
  }
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
    return new VerifyError('camera-busy', M.errors.cameraBusy);
  }
  if (name === 'SecurityError') {
    return new VerifyError('insecure', M.errors.insecure, { retryable: false });
  }
  return new VerifyError('camera-busy', format(M.errors.cameraFailed, { name: name || err }));
}

async function readEnvelope(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function delay(ms, signal, M) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new VerifyError('aborted', M.errors.aborted));
    }, { once: true });
  });
}

/** base64 (no data: prefix) of a File/Blob, or the string given. */
export async function portraitBase64(portrait) {
  if (!portrait) return null;
  if (typeof portrait === 'string') return portrait.replace(/^data:[^,]*,/, '');
  const dataUrl = await new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(portrait);
  });
  return String(dataUrl).replace(/^data:[^,]*,/, '');
}

async function openCamera(M) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw window.isSecureContext === false
      ? new VerifyError('insecure', M.errors.insecure, { retryable: false })
      : new VerifyError('unsupported', M.errors.noCameraApi, { retryable: false });
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      // 15 fps: the service analyses 10 frames a second (the rest are decoded and
      // dropped), so 30 would double its receiving cost and the upload for nothing.
      video: { facingMode: 'user', width: 640, height: 480, frameRate: { ideal: 15 } },
      audio: false,
    });
  } catch (err) {
    throw cameraError(err, M);
  }
}

async function createSession(url, { challenges, portrait }, signal, M) {
  // Without `challenges` the service picks its default set.
  const body = challenges == null ? {} : { challenges };
  const b64 = await portraitBase64(portrait);
  if (b64) body.portrait = b64;
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (signal?.aborted) throw new VerifyError('aborted', M.errors.aborted);
    throw new VerifyError('network', M.errors.unreachable);
  }
  const envelope = await readEnvelope(response);
  if (response.status !== 201 && response.status !== 200) throw httpError('create', response, envelope, M);
  if (!envelope?.whip_url || !envelope?.session_token) {
    throw new VerifyError('session-refused', M.errors.unexpectedAnswer);
  }
  return envelope;
}

function waitIceGathering(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, ICE_GATHERING_MAX_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/**
 * The release signal for a person whose eyes are closed: a short two-note tone
 * (WebAudio, no sound file) and a vibration where the device has one. The AudioContext
 * is made when start() runs, inside the click that started the check, so autoplay rules
 * let it sound; where it was still suspended, the next tap or key press resumes it.
 */
class ReleaseCue {
  constructor() {
    const Context = window.AudioContext || window.webkitAudioContext;
    this.audio = null;
    if (Context) {
      try { this.audio = new Context(); } catch { this.audio = null; }
    }
    this.resume = () => { this.audio?.resume().catch(() => {}); };
    this.resume();
    if (this.audio && this.audio.state !== 'running') {
      for (const type of ['pointerdown', 'keydown']) {
        document.addEventListener(type, this.resume, { capture: true });
      }
    }
  }

  get audible() {
    return this.audio?.state === 'running';
  }

  play() {
    navigator.vibrate?.([180, 90, 180]);
    if (!this.audio) return;
    const t0 = this.audio.currentTime + 0.01;
    for (const [offset, hz] of [[0, 660], [0.18, 990]]) {
      const osc = this.audio.createOscillator();
      const gain = this.audio.createGain();
      osc.type = 'sine';
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, t0 + offset);
      gain.gain.exponentialRampToValueAtTime(0.35, t0 + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + offset + 0.32);
      osc.connect(gain).connect(this.audio.destination);
      osc.start(t0 + offset);
      osc.stop(t0 + offset + 0.34);
    }
  }

  close() {
    for (const type of ['pointerdown', 'keydown']) {
      document.removeEventListener(type, this.resume, { capture: true });
    }
    // Late enough not to cut a tone that is still playing.
    setTimeout(() => this.audio?.close().catch(() => {}), 1000);
  }
}

/**
 * The widget drawn in `container`: preview, oval, steps, the prompt with its animation,
 * hints. `.vf[data-phase]` is act | hold | release | met | failed while a challenge is
 * on screen (style.css animates by it and by `data-action`). Screen readers hear prompts,
 * releases and failures at once (assertive) and the rest when idle (polite), from
 * off-screen live regions, so each is said once.
 */
class View {
  constructor(container, M) {
    this.M = M;
    this.host = document.createElement('div');
    this.host.className = 'vf-host';
    const root = this.host.attachShadow({ mode: 'open' });
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = new URL('./style.css', import.meta.url).href;
    this.styled = new Promise((resolve) => { css.onload = resolve; css.onerror = resolve; });
    root.append(css);
    const el = (tag, className, parent, text) => {
      const node = document.createElement(tag);
      node.className = className;
      if (text) node.textContent = text;
      parent.append(node);
      return node;
    };
    this.box = el('div', 'vf', root);
    this.box.dataset.state = 'camera';
    const stage = el('div', 'vf-stage', this.box);
    this.video = el('video', 'vf-video', stage);
    this.video.muted = true;
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.setAttribute('aria-hidden', 'true');
    this.oval = el('div', 'vf-oval', stage);
    this.badge = el('div', 'vf-badge', stage);
    this.badge.setAttribute('aria-hidden', 'true');
    const panel = el('div', 'vf-panel', this.box);
    const progress = el('div', 'vf-progress', panel);
    this.stepText = el('span', 'vf-step', progress);
    this.steps = el('ol', 'vf-steps', progress);
    this.steps.setAttribute('aria-hidden', 'true');
    const say = el('div', 'vf-say', panel);
    // A drawn face doing what is asked (as in the mirrored preview); CSS animates it.
    const figure = el('div', 'vf-figure', say);
    figure.setAttribute('aria-hidden', 'true');
    const head = el('div', 'vf-head', figure);
    const features = el('div', 'vf-features', head);
    el('span', 'vf-eye', features);
    el('span', 'vf-eye', features);
    el('span', 'vf-nose', features);
    el('span', 'vf-mouth', features);
    el('span', 'vf-arrow', figure);
    const words = el('div', 'vf-words', say);
    this.prompt = el('p', 'vf-prompt', words, M.widget.starting);
    this.detail = el('p', 'vf-detail', words);
    this.hint = el('p', 'vf-hint', panel);
    this.hint.setAttribute('aria-live', 'polite');
    // The connection note has its own line: progress rewrites the hint line several
    // times a second, and the oval's "good" follows the face alone.
    this.linkNote = el('p', 'vf-link', panel);
    this.linkNote.setAttribute('role', 'status');
    this.linkNote.setAttribute('aria-live', 'polite');
    this.sayNow = el('p', 'vf-sr', panel);
    this.sayNow.setAttribute('aria-live', 'assertive');
    this.sayNow.setAttribute('aria-atomic', 'true');
    this.sayLater = el('p', 'vf-sr', panel);
    this.sayLater.setAttribute('aria-live', 'polite');
    this.sayLater.setAttribute('aria-atomic', 'true');
    container.replaceChildren(this.host);
    this.holdTimer = null;
  }

  setState(state) {
    this.box.dataset.state = state;
  }

  show(stream) {
    this.video.srcObject = stream;
    this.video.play().catch(() => {});
  }

  /** The big line and the small one under it; `kind` colours the big one. */
  setPrompt(text, kind = '', detail = '') {
    this.prompt.textContent = text;
    this.prompt.dataset.kind = kind;
    this.detail.textContent = detail;
  }

  /** Say `text` to screen readers: at once (interrupting) or when they are idle. */
  announce(text, urgent = false) {
    (urgent ? this.sayNow : this.sayLater).textContent = text;
  }

  /** The challenge on screen (`action` drives the animation) and its phase, or none. */
  setPhase(phase, action = null) {
    clearTimeout(this.holdTimer);
    if (phase) this.box.dataset.phase = phase;
    else delete this.box.dataset.phase;
    if (action) this.box.dataset.action = action;
    else if (!phase) delete this.box.dataset.action;
  }

  setSteps(total, done) {
    if (this.steps.children.length !== total) {
      this.steps.replaceChildren(...Array.from({ length: total }, () => document.createElement('li')));
    }
    Array.from(this.steps.children).forEach((li, i) => { li.dataset.done = String(i < done); });
    const { widget } = this.M;
    this.stepText.textContent = !total ? '' : done >= total ? widget.allDone
      : format(widget.step, { n: done + 1, total });
  }

  setHints(hints, faces) {
    const words = (hints || []).map((h) => this.M.hints[h] || h);
    const good = words.length === 0 && faces === 1;
    this.oval.dataset.good = String(good);
    const text = good ? this.M.widget.good : words.join(' ');
    // Progress comes several times a second: rewriting the same words would make a
    // screen reader repeat them.
    if (this.hint.textContent !== text) this.hint.textContent = text;
  }

  clearHint() {
    this.hint.textContent = '';
  }

  /** The measured connection quality ('good', 'weak' or null: not measured, or over);
   * while weak, a note saying the connection is the problem. */
  setLink(quality) {
    if (quality) this.box.dataset.link = quality;
    else delete this.box.dataset.link;
    const text = quality === 'weak' ? this.M.hints['weak link'] : '';
    if (this.linkNote.textContent !== text) this.linkNote.textContent = text;
  }

  setBadge(text) {
    this.badge.textContent = text;
    this.badge.dataset.shown = String(Boolean(text));
  }

  /** `challenge`: the instruction and its animation, then "hold" after a reaction time. */
  challenge(msg, total) {
    const words = this.M.prompts[msg.action] || { say: msg.action };
    const count = msg.total ?? total;
    const index = msg.index ?? 0;
    this.setBadge('');
    this.setSteps(count, index);
    this.setPhase('act', msg.action);
    this.setPrompt(words.say, 'challenge', words.detail || '');
    const step = count > 1 ? `${format(this.M.widget.step, { n: index + 1, total: count })}. ` : '';
    this.announce(`${step}${words.say}. ${words.detail || ''}`.trim(), true);
    if (words.hold) {
      this.holdTimer = setTimeout(() => {
        this.box.dataset.phase = 'hold';
        this.setPrompt(this.M.widget.hold, 'hold', words.hold);
      }, HOLD_AFTER_MS);
    }
  }

  /** `release`: the release instruction, said at once. */
  release(msg) {
    const words = this.M.prompts[msg.action] || {};
    const text = words.release || this.M.widget.release;
    this.setPhase('release', msg.action);
    this.setPrompt(text, 'release');
    this.announce(`${text}.`, true);
  }

  met(msg, total) {
    this.setSteps(msg.total ?? total, (msg.index ?? 0) + 1);
    this.setPhase('met', msg.action);
    this.setPrompt(this.M.widget.done, 'met');
    this.setBadge('✓');
    this.announce(`${this.M.widget.done}.`);
  }

  failed(msg) {
    const [title, text] = describeFailure(msg.reason, this.M);
    this.setBadge('');
    this.setPhase('failed', msg.action);
    this.setPrompt(title, 'failed', text);
    this.announce(`${title}. ${text}`, true);
  }

  /** `deciding`: a spinner; a failure stays in view, since it is what the result will say. */
  deciding() {
    this.setBadge('');
    this.setHints([], 1);
    this.clearHint();
    if (this.box.dataset.phase !== 'failed') {
      this.setPhase(null);
      this.setPrompt(this.M.widget.checking, 'deciding');
    }
    this.announce(this.M.widget.checking);
  }
}

/** One verification attempt; see the comment at the top of this file. */
export async function start({
  sessionUrl, container, portrait = null, onEvent = () => {}, challenges = null,
  stream = null, signal = null, lang = null, messages = null,
} = {}) {
  if (!sessionUrl) throw new TypeError('start(): sessionUrl is required');
  if (!container) throw new TypeError('start(): container is required');
  const M = messagesFor({ lang, messages });
  if (!window.RTCPeerConnection) {
    throw new VerifyError('unsupported', M.errors.noWebRtc, { retryable: false });
  }
  const emit = (event) => {
    try { onEvent(event); } catch (err) { console.error('onEvent threw', err); }
  };
  // Made before the first await: still inside the caller's click, for autoplay rules.
  const cue = new ReleaseCue();
  const view = new View(container, M);
  await view.styled;
  const setState = (state) => { view.setState(state); emit({ type: 'state', state }); };

  const ownStream = !stream;
  let pc = null;
  let resource = null;
  let session = null;
  let linkTimer = null;
  let linkStopped = false;
  let link = null;
  const cameraRuns = () => stream.getVideoTracks()
    .some((t) => t.readyState === 'live' && t.enabled && !t.muted);
  // The connection, measured every LINK_POLL_MS while the peer connection exists (from
  // before the first prompt); one poll at a time, ended by stopAll on every way out.
  const pollLink = async () => {
    let reading;
    try {
      reading = linkReading(await pc.getStats());
    } catch {
      return;  // the peer connection was closed meanwhile
    }
    if (linkStopped) return;
    // a stopped or muted camera sends no frames: that is not the connection
    if (!cameraRuns()) reading.fps = null;
    const next = nextLinkState(link, reading);
    if (next.quality !== (link?.quality ?? null)) {
      view.setLink(next.quality);
      emit({ type: 'link', quality: next.quality, loss: reading.loss,
        rtt_ms: reading.rttMs === null ? null : Math.round(reading.rttMs), fps: reading.fps });
    }
    link = next;
    linkTimer = setTimeout(pollLink, LINK_POLL_MS);
  };
  const stopAll = () => {
    linkStopped = true;
    clearTimeout(linkTimer);
    view.setLink(null);
    view.setPhase(null);
    cue.close();
    if (pc) pc.close();
    if (ownStream && stream) stream.getTracks().forEach((t) => t.stop());
    if (resource && session) {
      // Ends the server side at once (RFC 9725 section 4.2); the result stays readable.
      fetch(resource, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${session.session_token}` },
        keepalive: true,
      }).catch(() => {});
      resource = null;
    }
  };

  try {
    setState('camera');
    if (!stream) stream = await openCamera(M);
    if (signal?.aborted) throw new VerifyError('aborted', M.errors.aborted);
    view.show(stream);
    setState('connecting');
    view.setPrompt(M.widget.connecting);

    session = typeof sessionUrl === 'string'
      ? await createSession(sessionUrl, { challenges, portrait }, signal, M)
      : sessionUrl;
    emit({ type: 'session', session: { ...session, session_token: undefined } });
    const total = session.challenges?.length || 0;
    view.setSteps(total, 0);

    pc = new RTCPeerConnection({ iceServers: session.ice_servers || [] });
    for (const track of stream.getVideoTracks()) {
      // a camera that ignores the ideal rate is still sent at 15 fps at most
      pc.addTransceiver(track, { direction: 'sendonly', streams: [stream],
        sendEncodings: [{ maxFramerate: 15 }] });
    }
    // Created before the offer so the SDP carries the SCTP section (spec section 2.3).
    const channel = pc.createDataChannel('liveness');
    linkTimer = setTimeout(pollLink, LINK_POLL_MS);
    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc);

    let response;
    try {
      response = await fetch(session.whip_url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/sdp',
          Authorization: `Bearer ${session.session_token}`,
        },
        body: pc.localDescription.sdp,
        signal,
      });
    } catch {
      if (signal?.aborted) throw new VerifyError('aborted', M.errors.aborted);
      throw new VerifyError('network', M.errors.unreachable);
    }
    if (response.status !== 201) throw httpError('whip', response, await readEnvelope(response), M);
    const location = response.headers.get('Location');
    if (location) resource = new URL(location, session.whip_url).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });

    const payload = await new Promise((resolve, reject) => {
      let deciding = false;
      let settled = false;
      let everConnected = false;
      let lostTimer = null;
      const finish = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(lostTimer);
        clearTimeout(connectTimer);
        fn(value);
      };
      const fromResultUrl = () => {
        if (settled) return;
        pollResult(session, signal, M).then((p) => finish(resolve, p), (e) => finish(reject, e));
      };
      const lost = () => {
        if (deciding) fromResultUrl();
        else finish(reject, new VerifyError('network', everConnected
          ? M.errors.connectionLost : M.errors.cannotConnect));
      };
      const connectTimer = setTimeout(() => { if (!everConnected) lost(); }, CONNECT_TIMEOUT_MS);
      pc.addEventListener('connectionstatechange', () => {
        const s = pc.connectionState;
        if (s === 'connected') {
          everConnected = true;
          clearTimeout(lostTimer);
        } else if (s === 'failed') {
          lost();
        } else if (s === 'disconnected') {
          clearTimeout(lostTimer);
          lostTimer = setTimeout(lost, DISCONNECTED_GRACE_MS);
        }
      });
      channel.addEventListener('open', () => {
        setState('prompt');
        view.setPrompt(M.widget.placeFace);
      });
      channel.addEventListener('close', () => {
        if (!settled) fromResultUrl();
      });
      channel.addEventListener('message', (event) => {
        let msg;
        try { msg = JSON.parse(event.data); } catch { return; }
        emit(msg);
        if (msg.type === 'progress') {
          view.setHints(msg.hints, msg.faces);
        } else if (msg.type === 'connection') {
          // the video stalled: the service paused the challenge clock (README, Unreliable networks)
          view.setHints(msg.state === 'unstable' ? ['unstable'] : [], 1);
        } else if (msg.type === 'challenge') {
          view.challenge(msg, total);
        } else if (msg.type === 'release') {
          view.release(msg);
          // The person may have their eyes closed: they hear (or feel) this one.
          if (msg.action === 'eyes_closed') cue.play();
        } else if (msg.type === 'challenge_met') {
          view.met(msg, total);
        } else if (msg.type === 'challenge_failed') {
          view.failed(msg);
        } else if (msg.type === 'deciding') {
          deciding = true;
          view.deciding();
          setState('deciding');
        } else if (msg.type === 'result') {
          finish(resolve, msg.payload);
        }
      });
      signal?.addEventListener('abort', () => finish(reject, new VerifyError('aborted', M.errors.aborted)),
        { once: true });
    });
    view.setPrompt(M.widget.done, 'met');
    setState('result');
    return payload;
  } finally {
    stopAll();
  }
}

/** GET result_url until the decision is there (200); 202 means still running.
 * `messages`: a table from messagesFor() (default: the browser's language). */
export async function pollResult(session, signal = null, messages = messagesFor()) {
  const M = messages;
  const until = Date.now() + RESULT_POLL_MAX_MS;
  while (Date.now() < until) {
    let response;
    try {
      response = await fetch(session.result_url, {
        headers: { Authorization: `Bearer ${session.session_token}` },
        cache: 'no-store',
        signal,
      });
    } catch {
      if (signal?.aborted) throw new VerifyError('aborted', M.errors.aborted);
      await delay(RESULT_POLL_MS, signal, M);
      continue;
    }
    const envelope = await readEnvelope(response);
    if (response.status === 200 && envelope) return envelope;
    if (response.status !== 202) throw httpError('result', response, envelope, M);
    await delay(RESULT_POLL_MS, signal, M);
  }
  throw new VerifyError('network', M.errors.noAnswer);
}
