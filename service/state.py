"""What the running app holds: the root config, the authenticator, the models' slot.

Only the composition root (service/app.py) reads it: the handlers below get their own
settings, the authenticator and the models' slot handed to them, never this."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from service.config import Config
from service.http.auth import Authenticator
from service.vision.runtime import RuntimeSlot


@dataclass
class ServiceState:
    config: Config
    auth: Authenticator
    models: RuntimeSlot = field(default_factory=RuntimeSlot)


STATE = web.AppKey("state", ServiceState)
