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

from service.http_server import HttpSettings
from service.liveness.decision import VideoPolicy
from service.liveness.engine import EngineParams
from service.vision.admission import AdmissionParams

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
    # Admission to that pool: overload answers 4290 at once (service/vision/admission.py).
    admission: AdmissionParams = field(default_factory=AdmissionParams)

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

    # --- request bodies (issue 10): read in memory, parsed by service/api/forms.py ---
    # Fields in one form, multipart or JSON body: the largest request of the API has 7
    # (key, timestamp, token, typeId, img1, img2, file); 32 leaves room for extras that
    # clients add and we ignore, and bounds the work a body of many tiny fields causes.
    max_form_fields: int = 32
    # Header lines in one multipart part: browsers, curl and aiohttp send 1-3
    # (Content-Disposition, Content-Type, at times Content-Length).
    max_part_headers: int = 8
    # A WHIP offer or trickle fragment (service/rtc/sdp.py): aiortc's and browsers'
    # offers with audio, video and a data channel are 2-8 KB; 64 KiB leaves room for
    # many codecs and candidates and keeps SDP parsing cheap.
    max_sdp_bytes: int = 64 * 1024
    # m= sections in one offer (audio, video and the data channel make 3), and ICE
    # candidates in one offer or PATCH (a browser gathers 2-10): every remote candidate
    # costs connectivity checks, STUN packets sent to the address it names.
    max_sdp_media: int = 8
    max_sdp_candidates: int = 32

    # --- HTTP connections: slow and greedy clients (service/http_server.py) ---
    http: HttpSettings = field(default_factory=HttpSettings)

    # --- media decoding (service.decoding: worker processes, issue 10) ---
    # A decoder worker that sends nothing for this long (an image, or the next video
    # frame) is killed and the request answers 4002: a 12 MP JPEG decodes in ~0.25 s,
    # an 85 MP PNG in ~1.3 s and a 1080p frame in milliseconds here, so 10 s only ever
    # cuts a stuck decoder.
    decode_timeout_s: float = 10.0
    # Memory a worker may write (RLIMIT_DATA) during a job; past it the decoder fails
    # inside the worker (4013). Its imports take ~95 MB; the largest image the budget
    # below admits, as Pillow stores it (4 bytes/pixel) plus its reduced copy, fits.
    decode_worker_memory_mb: int = 1024
    # Decoded samples one image may need (width x height x bands x bytes per sample, at
    # the size actually decoded), checked before decoding (4013 past it): 256 MB admits
    # an 85 MP RGB scan and refuses a 10000x10000 RGB PNG (286 MB). JPEGs are decoded
    # reduced first, so a 100 MP JPEG costs 72 MB.
    decode_memory_budget_mb: int = 256
    # Images are decoded at most this long (longest side; JPEGs over twice this are
    # decoded at 1/2, 1/4 or 1/8 scale): the largest of `detect_sides`, so face finding
    # sees the same pixels as with the full image.
    image_work_side: int = 4000

    # --- silent liveness (calibrated by bench/silent_liveness.py, see README) ---
    # Averaged MiniFASNet probability of a real face at or above which an image is live.
    pad_threshold: float = 0.5

    # --- video liveness: cue detectors and the fused verdict ---
    # Each component's parameters sit beside how they were calibrated:
    # service/liveness/{blink,mouth,turns,replacement,planarity}.py and engine.py.
    engine: EngineParams = field(default_factory=EngineParams)
    # What the verdict requires (service/liveness/decision.py).
    video_policy: VideoPolicy = field(default_factory=VideoPolicy)

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


KeyPath = tuple[str, ...]  # a setting's place: ("engine", "blink", "enter_ratio")


def _apply(obj: Any, updates: dict[KeyPath, Any], where: str = "") -> Any:
    """`obj` (a frozen settings dataclass) with `updates` applied, each coerced to the
    type of the default it replaces; unknown names are refused, naming the full path."""
    names = {f.name for f in dataclasses.fields(obj)}
    direct: dict[str, Any] = {}
    nested: dict[str, dict[KeyPath, Any]] = {}
    for path, value in updates.items():
        head, rest = path[0], path[1:]
        current = getattr(obj, head, None) if head in names else None
        section = dataclasses.is_dataclass(current)
        if head not in names or (rest and not section):
            raise ValueError(f"unknown configuration key: {where}{'.'.join(path)}")
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif section and isinstance(value, Mapping):  # a TOML table for a section
            nested.setdefault(head, {}).update({(k,): v for k, v in value.items()})
        elif section:
            if type(value) is not type(current):
                raise ValueError(f"configuration key {where}{head} is a section")
            direct[head] = value
        else:
            direct[head] = _coerce(value, current)
    for head, sub in nested.items():
        direct[head] = _apply(getattr(obj, head), sub, f"{where}{head}.")
    return dataclasses.replace(obj, **direct)


def load_config(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the Config from defaults, SERVICE_CONFIG file, SERVICE_* env and overrides.

    Sections nest: TOML tables (`[engine.blink]`), env names joined by a double
    underscore (`SERVICE_ENGINE__BLINK__ENTER_RATIO=0.7`), keyword overrides the same way
    (`engine__blink__enter_ratio=0.7`). An unknown name anywhere is an error, so a typo
    never silently leaves a default in place.
    """
    env = os.environ if env is None else env
    updates: dict[KeyPath, Any] = {}
    if env.get("SERVICE_CONFIG"):
        table = tomllib.loads(Path(env["SERVICE_CONFIG"]).read_text())
        updates.update({(k,): v for k, v in table.items()})
    for name, value in env.items():
        if name.startswith("SERVICE_") and name != "SERVICE_CONFIG":
            updates[tuple(name[len("SERVICE_"):].lower().split("__"))] = value
    updates.update({tuple(k.split("__")): v for k, v in overrides.items() if v is not None})
    return _apply(Config(), updates)
