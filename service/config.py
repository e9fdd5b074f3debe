"""Service configuration: one frozen dataclass tree, defaults that run out of the box.

Deployment settings (address, keys, model files, limits every request shares) are
top-level fields; each component's parameters are a nested section, a frozen
<Component>Settings dataclass defined beside the component, with how each default was
chosen or calibrated, so every default exists exactly once. Values come from, in rising
priority: those defaults, a TOML file named by SERVICE_CONFIG (sections as tables),
environment variables SERVICE_<FIELD> / SERVICE_<SECTION>__<FIELD> and the command
line (--host/--port).

The composition root (service/app.py, service/state.py, this module) holds the root
Config and hands each component its own section (and the few top-level values it needs,
like max_request_bytes), not the whole tree (pyproject.toml's ignore_imports lists the
modules that still import it). Field names are part of the env var and
TOML names, and one name means one thing: limits that measure or gate different things
are named for what they measure or gate (engine.hint_min_face_width_px, the quality
gate's silent.quality.min_face_side_px, engine.replacement.identity_max_yaw, ...).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.api.forms import FormSettings
from service.cluster.shared_state import ReplicaSettings
from service.http.auth import AuthSettings
from service.http.server import HttpSettings
from service.judging.compare import CompareSettings
from service.judging.decision import VideoDecisionSettings
from service.judging.silent import SilentSettings
from service.liveness.engine import EngineSettings
from service.media.uploads import MediaSettings
from service.ops.metrics import MetricsSettings
from service.ops.webhooks import WebhookSettings
from service.rtc.session import SessionSettings
from service.rtc.turn import TurnSettings
from service.vision.admission import AdmissionSettings
from service.vision.faces import FaceSearchSettings

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
    """The root of the tree (see the module doc); each section's fields are documented
    in its own dataclass."""

    # Where the HTTP server listens (python -m service; --host/--port override).
    host: str = "127.0.0.1"
    port: int = 8080
    # The verified model files (models/manifest.toml; `make models` puts them here).
    model_dir: Path = REPO_ROOT / ".models"
    # key -> secret; empty means "generate one random local key at start-up and print it"
    api_keys: Mapping[str, str] = field(default_factory=dict)

    # --- request size (spec: 10 MB; 4013 past it, counted as the body arrives) ---
    max_request_bytes: int = 10 * 1024 * 1024

    # --- client media: formats, decoding in worker processes, limits (service/media/uploads.py)
    media: MediaSettings = field(default_factory=MediaSettings)

    # --- compute ---
    # Model calls run in this many threads (one per core); each thread owns its model
    # instances because OpenCV's dnn networks are not safe to share across threads.
    workers: int = max(1, os.cpu_count() or 1)
    # Admission to that pool: overload answers 4290 at once (service/vision/admission.py).
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)

    # --- face finding, comparison and single-image liveness ---
    # How the main face is found (service/vision/faces.py).
    faces: FaceSearchSettings = field(default_factory=FaceSearchSettings)
    # Score mapping of typeId 21 (service/judging/compare.py).
    compare: CompareSettings = field(default_factory=CompareSettings)
    # Silent liveness threshold and quality gates (service/judging/silent.py).
    silent: SilentSettings = field(default_factory=SilentSettings)

    # --- who may call: API keys' time window, replays, lockout (service/http/auth.py) ---
    auth: AuthSettings = field(default_factory=AuthSettings)
    # --- request bodies: field and part limits of the form parsers (service/api/forms.py)
    forms: FormSettings = field(default_factory=FormSettings)

    # --- streaming sessions (spec section 2; service/rtc/session.py) ---
    sessions: SessionSettings = field(default_factory=SessionSettings)
    # STUN/TURN URLs given to clients and used by our peer connections. Empty: host
    # candidates only (loopback, LAN, or a server with a public address). A TURN entry
    # without credentials (turn:host:3478?transport=udp) gets each session's own from
    # turn.secret below; the static form turn:USER:PASSWORD@host:3478 still works but
    # hands every client the same password (service/rtc/peer.py parse_ice_server,
    # service/rtc/turn.py; README "Scaling out").
    ice_servers: tuple[str, ...] = ()
    # coturn's shared secret (use-auth-secret): short-lived per-session credentials.
    turn: TurnSettings = field(default_factory=TurnSettings)
    # Browsers allowed to call the session API from another origin ("*" = any).
    cors_origin: str = "*"
    # POST /v1/demo/sessions lets the bundled web page create sessions with no API
    # secret in the browser: for local demos only, off by default.
    demo_sessions: bool = False
    # The browser onboarding page served at / (set to an empty path to serve none).
    web_dir: Path = REPO_ROOT / "web"

    # --- several replicas (spec 2.1; service/cluster/shared_state, service/cluster/replica.py) ---
    # Empty: one process keeps sessions, replay cache, lockouts and quotas in memory.
    # redis://host:6379/0: N replicas share them in Redis and route sessions to their
    # owner (README "Shared state (Redis)").
    redis_url: str = ""
    # This replica's externally reachable base URL (http://10.0.0.5:8080): the absolute
    # whip_url, result_url and Location it hands out, and where other replicas forward
    # sessions to. Empty: the request's own origin alone, http://host:port with Redis.
    public_url: str = ""
    # The replicas' shared secret, heartbeats, capacity, drain and Redis timeouts
    # (service/cluster/shared_state/base.py).
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)

    # --- HTTP connections: slow and greedy clients (service/http/server.py) ---
    http: HttpSettings = field(default_factory=HttpSettings)

    # --- operations: logs, metrics, webhooks ---
    # "text" (a terminal) or "json" (one JSON object per line, service/ops/logs.py).
    log_format: str = "text"
    # GET /metrics, Prometheus format (service/ops/metrics.py).
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    # Session results POSTed to callback URLs on allowed hosts (service/ops/webhooks.py).
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    # --- video liveness: cue detectors and the fused verdict ---
    # Each component's parameters sit beside how they were calibrated:
    # service/liveness/{blink,mouth,turns,replacement,holds}.py and engine.py.
    engine: EngineSettings = field(default_factory=EngineSettings)
    # What the verdict requires (service/judging/decision.py).
    video_policy: VideoDecisionSettings = field(default_factory=VideoDecisionSettings)


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
