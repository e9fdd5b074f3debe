"""Shared fixtures: the real app on a real loopback port, test data, signed requests."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from service.app import create_app
from service.config import Config, load_config
from service.http.server import ServiceRunner
from service.state import STATE
from testing.client import VerifyClient

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DATA = SHARED / "data"
MODEL_DIR = Path(os.environ.get("SERVICE_MODEL_DIR", ROOT / ".models"))
KEY, SECRET = "test-key", "test-secret"


@pytest.fixture(scope="session")
def labels() -> dict[str, Any]:
    return json.loads((DATA / "labels.json").read_text())


def data_bytes(path: str) -> bytes:
    return (DATA / path).read_bytes()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's first bytes)."""
    face = cv2.imread(str(DATA / "faces/face_recognition/obama__obama.jpg"))
    real = cv2.imencode(".png", face[:8, :8])[1].tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return real[:8] + patched + real[8 + 25:]


def make_config(**overrides: Any) -> Config:
    """The defaults with the test key and models; nested settings as `section__name=`."""
    return load_config(env={}, **{"model_dir": MODEL_DIR, "api_keys": {KEY: SECRET},
                                  **overrides})


class ServiceTestServer(TestServer):
    """aiohttp's test server on the runner `python -m service` uses (service.http.server),
    so tests go through the same HTTP layer: envelope errors, deadlines, connection cap."""

    async def _make_runner(self, **kwargs: Any) -> ServiceRunner:
        # aiohttp 3.14: TestServer builds its runner here. Its own runner settings
        # (handler_cancellation=True) are left out: production runs aiohttp's defaults.
        return ServiceRunner(self.app, self.app[STATE].config.http)


async def start_server(config: Config) -> TestServer:
    server = ServiceTestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    await server.app[STATE].models.wait_ready()
    return server


@pytest_asyncio.fixture(scope="session")
async def server() -> AsyncIterator[TestServer]:
    srv = await start_server(make_config())
    yield srv
    await srv.close()


@pytest_asyncio.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def client(base_url: str, http: aiohttp.ClientSession) -> VerifyClient:
    return VerifyClient(base_url, KEY, SECRET, http)


async def each_case(cases: dict[str, Awaitable[Any]]) -> dict[str, Any]:
    """Run independent cases at once (real-time sessions mostly wait) and return their
    results by name. Every case runs to its end; if any failed, all the failures are
    raised together, each noted with its case's name."""
    results = await asyncio.gather(*cases.values(), return_exceptions=True)
    failed = []
    for name, result in zip(cases, results):
        if isinstance(result, BaseException):
            result.add_note(f"in case {name!r}")
            failed.append(result)
    if failed:
        names = ", ".join(n for n, r in zip(cases, results) if isinstance(r, BaseException))
        raise BaseExceptionGroup(f"cases failed: {names}", failed)
    return dict(zip(cases, results))


def veritems(body: dict[str, Any]) -> list[str]:
    return [item["desc"] for item in body["infoList"][0]["veritem"]]


def status_of(body: dict[str, Any]) -> str:
    return body["messageString"]["status"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The container image takes minutes to build: when its test is selected, the build
    starts now, in the background, and the rest of the suite runs meanwhile."""
    if any(item.path.name == "test_image.py" for item in items):
        from image_build import BUILD

        BUILD.start()
