"""Service configuration: one dataclass, defaults that run out of the box.

Values come from, in rising priority: the defaults below, a TOML file named by
SERVICE_CONFIG (same keys as the fields), environment variables SERVICE_<FIELD> and the
command line (--host/--port). Thresholds carry a comment saying how they were calibrated.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_api_keys(text: str) -> dict[str, str]:
    """Parse `key:secret,key2:secret2` (the SERVICE_API_KEYS format)."""
    keys: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, secret = item.partition(":")
        if not sep or not key.strip() or not secret.strip():
            raise ValueError("SERVICE_API_KEYS must look like key:secret,key2:secret2")
        keys[key.strip()] = secret.strip()
    return keys


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    model_dir: Path = REPO_ROOT / ".models"
    # key -> secret; empty means "generate one random local key at start-up and print it"
    api_keys: Mapping[str, str] = field(default_factory=dict)

    # --- auth (spec section 1) ---
    timestamp_window_s: float = 300.0
    # An identical request (same key, timestamp, token and body) seen twice inside the
    # timestamp window is refused as a replay; distinct requests may share a timestamp.
    reject_replays: bool = True
    # Failed authentications per client address before 4290, over a sliding window.
    max_failed_auth: int = 20
    failed_auth_window_s: float = 60.0

    # --- limits (spec: 10 MB request, 100 MP image) ---
    max_request_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 100_000_000

    # --- compute ---
    # Model calls run in this many threads (one per core); each thread owns its model
    # instances because OpenCV's dnn networks are not safe to share across threads.
    workers: int = max(1, os.cpu_count() or 1)
    # Jobs waiting for a worker beyond this answer 4290 "busy" instead of queueing forever.
    max_pending_jobs: int = 64

    # --- face finding ---
    # YuNet score a detection needs to count as a face. 0.6 is OpenCV Zoo's default; the
    # refinement pass below removes the confident false faces that remain.
    face_score: float = 0.6
    # A candidate is confirmed when the detector finds it again in a crop centred on it
    # and resized so the face is ~128 px: false faces on document guilloche patterns (the
    # BDR specimen) vanish there, real faces come back with score >= 0.7 and IoU >= 0.4.
    refine_score: float = 0.7
    refine_iou: float = 0.4
    # ... and BlazeFace must agree on that crop. On shared/data real faces score 0.79-0.93
    # (the LVA booklet portrait is the lowest), confirmed-by-YuNet false faces 0-0.55.
    presence_score: float = 0.65
    # Image sizes (longest side) tried in turn until a confirmed face is found: fast on
    # selfies, still finds a 40 px face in a 4000 px group photo.
    detect_sides: tuple[int, ...] = (320, 1600, 4000)
    # Second face this fraction of the main face's area or larger -> "several faces" where
    # one is required (a selfie with two people); a document's small ghost portrait is ~0.1.
    ambiguous_face_ratio: float = 0.7
    # Faces narrower than this (pixels, eye to eye * 2.5 ~ face width) cannot be compared.
    min_face_px: int = 32

    # --- face comparison (calibrated by bench/face_compare.py --calibrate, see README) ---
    # Score = 100 / (1 + exp(-(slope * cosine + intercept))): Platt scaling of the SFace
    # cosine similarity fitted on the 242 labelled pairs of shared/data; the yes/no
    # threshold is the cosine where the score crosses 50.
    compare_slope: float = 19.51
    compare_intercept: float = -7.555

    # --- video liveness (uploaded clips and streams) ---
    # Frames analysed per second (clips at higher rates are sampled evenly by time) and
    # the working resolution (longest side): blinks last 100-400 ms, so 15 fps sees each
    # one in 2-6 frames; 640 px keeps a webcam face above 150 px wide.
    analysis_fps: float = 15.0
    work_side: int = 640
    # Spec limits for uploaded videos (4013 past them): 30 s, 1080p.
    video_max_duration_s: float = 30.0
    video_max_pixels: int = 1920 * 1088
    video_max_frames: int = 30 * 120
    # Seconds between identity (replacement) samples while the face stays put; a jump
    # or a lost face samples at once, a doubtful sample is re-checked on the next frame.
    # 2 s caught every two-person splice of bench/video_liveness.py (cuts at 1.5, 2.5,
    # 3.5 s and a push from the side) at half the cost of sampling every second.
    identity_interval_s: float = 2.0
    # The face must be tracked in this fraction of analysed frames to be "live".
    video_min_tracked_fraction: float = 0.6
    # Two faces compete (4004) when a second face of comparable size is present in this
    # fraction of the frames with a face.
    video_competing_fraction: float = 0.8

    # --- streaming sessions (spec section 2) ---
    session_ttl_s: float = 120.0
    max_session_ttl_s: float = 600.0
    # Concurrent sessions (created, connected or deciding); new ones answer 4290 "busy".
    # Sized from bench/stream_load.py: what the machine sustains at the analysis rate.
    max_sessions: int = 6
    # Sessions one API key may create per minute (attempt limit against brute force
    # and runaway retry loops).
    sessions_per_key_per_minute: int = 30
    default_challenges: int = 2
    # Seconds the person has for each prompt.
    challenge_time_s: float = 7.0
    # Frames analysed per second in a stream: 10 sees every blink (>= 100 ms) at least
    # once and leaves CPU for many streams per core.
    stream_analysis_fps: float = 10.0
    # A session is decided no sooner than this after the face was first seen, even when
    # its prompts were met at once: the best-frame choice (and so silent liveness)
    # needs a few seconds of video to be stable (one blink met in 0.5 s gave live
    # probabilities from 0.03 to 0.98 on the same clip in the browser test).
    stream_min_observation_s: float = 2.0
    # A connected peer that sends no video for this long is decided as "no video".
    stream_media_timeout_s: float = 10.0
    # A decided session's result stays readable this long, then the session is forgotten.
    result_retention_s: float = 300.0
    # STUN/TURN URLs given to clients and used by our peer connections. Empty: host
    # candidates only (loopback, LAN, or a server with a public address).
    ice_servers: tuple[str, ...] = ()
    # Browsers allowed to call the session API from another origin ("*" = any).
    cors_origin: str = "*"
    # POST /v1/demo/sessions lets the bundled web page create sessions with no API
    # secret in the browser: for local demos only, off by default.
    demo_sessions: bool = False
    # The browser onboarding page served at / (set to an empty path to serve none).
    web_dir: Path = REPO_ROOT / "web"

    # --- silent liveness (calibrated by bench/silent_liveness.py, see README) ---
    # Averaged MiniFASNet probability of a real face at or above which an image is live.
    pad_threshold: float = 0.5

    # --- video liveness cues ---
    # Calibrated with bench/blink_eval.py on shared/data at analysis_fps = 15: 56 ZJU
    # clips (14 people, with/without glasses, upward view; 189 labelled blinks) and 7
    # GRID speech clips. Result: 98% precision / 98% recall on blink events (fixed
    # EAR < 0.2: 88% / 97%); the same values give >= 96% / 96% at 10 fps and every frame.
    # Blink. The open-eye level is this percentile of the EAR over the last few seconds:
    # open EAR is 0.22-0.34 across the clips; even 6 blinks in 5 s keep under 15% of the
    # samples closed. Window 2-5 s and percentile 80-95 all score the same at 15 fps.
    blink_baseline_window_s: float = 3.0
    blink_baseline_percentile: float = 85.0
    # A closure starts under enter_ratio of the open level (open eyes stay >= 0.83) and
    # is a blink if it reaches close_ratio: 0.75-0.8 gives the same count, 0.7 loses two
    # shallow blinks that 15 fps sampling caught half-closed, 0.65 loses seven.
    blink_enter_ratio: float = 0.8
    blink_close_ratio: float = 0.75
    # Reopened once the EAR has come back this fraction of the way from its lowest point
    # to the open level: splits two blinks with a half-open gap (0.6 best, 0.7 one event
    # less; 0.8 merges them and misses blinks whose eyes settle lower than before).
    blink_reopen_fraction: float = 0.6
    # First to last closed sample; labelled blinks with their slow reopening last up to
    # 0.8 s, what 15 fps sees closed up to 0.5 s. Longer is a slow closure, not a blink.
    blink_max_duration_s: float = 0.7
    # Beyond this head yaw the eye and lip contours are foreshortened and the ratios mean
    # little; the cues skip such frames (not exercised by shared/data: |yaw| <= 10 deg).
    blink_max_yaw_deg: float = 30.0
    # Mouth. The closed level is this low percentile of the inner-lip aspect ratio (some
    # people rest with lips apart: 0.1-0.15 on three ZJU clips).
    mouth_baseline_window_s: float = 4.0
    mouth_baseline_percentile: float = 10.0
    # An excursion opens this far above the closed level and the last low point, and
    # ends when the MAR has fallen back by close_fraction of its rise. At 0.08 every GRID
    # clip shows >= 3 excursions at 15 fps (0.10: one clip only 2) and landmark jitter on
    # the 56 silent ZJU clips makes at most one; window and fraction barely matter.
    mouth_open_delta: float = 0.08
    mouth_close_fraction: float = 0.5
    # "Moved the mouth" = this many excursions: only 000011M_UNN among the ZJU clips
    # reaches 2, and that subject does talk (checked by eye).
    mouth_min_events: int = 2
    # One excursion this large answers an "open your mouth" prompt. No challenge clip
    # exists in shared/data: set above typical speech syllables (GRID peaks 0.11-0.40,
    # median ~0.2), so a deliberate opening is needed.
    mouth_wide_amplitude: float = 0.3

    @property
    def compare_threshold(self) -> float:
        return -self.compare_intercept / self.compare_slope


def _coerce(value: Any, target: Any) -> Any:
    if isinstance(target, bool):
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
    if isinstance(target, int):
        return int(value)
    if isinstance(target, float):
        return float(value)
    if isinstance(target, Path):
        return Path(value)
    if isinstance(target, tuple):
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        kind = type(target[0]) if target else str  # an empty default holds strings
        return tuple(kind(v) for v in items if str(v).strip())
    if isinstance(target, Mapping):
        return dict(value) if isinstance(value, Mapping) else parse_api_keys(str(value))
    return str(value)


def load_config(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the Config from defaults, SERVICE_CONFIG file, SERVICE_* env and overrides."""
    env = os.environ if env is None else env
    base = Config()
    values: dict[str, Any] = {}
    if env.get("SERVICE_CONFIG"):
        values.update(tomllib.loads(Path(env["SERVICE_CONFIG"]).read_text()))
    for f in dataclasses.fields(Config):
        name = f"SERVICE_{f.name.upper()}"
        if name in env:
            values[f.name] = env[name]
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
    coerced = {k: _coerce(v, getattr(base, k)) for k, v in values.items()}
    return dataclasses.replace(base, **coerced)
