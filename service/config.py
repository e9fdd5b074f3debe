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

from service.api.media import MediaSettings
from service.compare import CompareParams
from service.http_server import HttpSettings
from service.liveness.decision import VideoPolicy
from service.liveness.engine import EngineParams
from service.silent_liveness import SilentLivenessParams
from service.vision.admission import AdmissionParams
from service.vision.faces import FaceSearchParams

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

    # --- request size (spec: 10 MB; 4013 past it, counted as the body arrives) ---
    max_request_bytes: int = 10 * 1024 * 1024

    # --- client media: formats, decoding in worker processes, limits (service/api/media.py)
    media: MediaSettings = field(default_factory=MediaSettings)

    # --- compute ---
    # Model calls run in this many threads (one per core); each thread owns its model
    # instances because OpenCV's dnn networks are not safe to share across threads.
    workers: int = max(1, os.cpu_count() or 1)
    # Admission to that pool: overload answers 4290 at once (service/vision/admission.py).
    admission: AdmissionParams = field(default_factory=AdmissionParams)

    # --- face finding, comparison and single-image liveness ---
    # How the main face is found (service/vision/faces.py).
    faces: FaceSearchParams = field(default_factory=FaceSearchParams)
    # Score mapping of typeId 21 (service/compare.py).
    compare: CompareParams = field(default_factory=CompareParams)
    # Silent liveness threshold and quality gates (service/silent_liveness.py).
    silent: SilentLivenessParams = field(default_factory=SilentLivenessParams)

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

    # --- video liveness: cue detectors and the fused verdict ---
    # Each component's parameters sit beside how they were calibrated:
    # service/liveness/{blink,mouth,turns,replacement,planarity}.py and engine.py.
    engine: EngineParams = field(default_factory=EngineParams)
    # What the verdict requires (service/liveness/decision.py).
    video_policy: VideoPolicy = field(default_factory=VideoPolicy)


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
