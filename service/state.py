"""What the running app holds: config, authenticator, model runtime, readiness."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from service.config import Config
from service.errors import InternalError
from service.http.auth import Authenticator
from service.vision.runtime import ModelRuntime


@dataclass
class ServiceState:
    config: Config
    auth: Authenticator
    _runtime: ModelRuntime | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    load_error: str = ""

    @property
    def runtime(self) -> ModelRuntime:
        if self._runtime is None:
            raise InternalError("models are not loaded")
        return self._runtime

    def set_runtime(self, runtime: ModelRuntime) -> None:
        self._runtime = runtime
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float = 120.0) -> None:
        if self.load_error:
            raise InternalError("models failed to load")
        await asyncio.wait_for(self._ready.wait(), timeout)


STATE = web.AppKey("state", ServiceState)
