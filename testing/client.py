"""The tests' raw-protocol helper: signs requests and answers (HTTP status, envelope).

Tests of the wire format (exact envelopes, statuses, base64 against multipart) and the
benches that need the raw answer (bench/face_compare.py, bench/real_footage.py) use it;
integrators, and the tests and benches that stand in for them, use the client packages
in clients/ (verification_client), which parse answers and raise on refusals.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from service.http.auth import make_token


def signed_fields(key: str, secret: str, timestamp: float | str | None = None) -> dict[str, str]:
    ts = f"{time.time():.6f}" if timestamp is None else str(timestamp)
    return {"key": key, "timestamp": ts, "token": make_token(secret, key, ts)}


@dataclass
class VerifyClient:
    base_url: str
    key: str
    secret: str
    session: aiohttp.ClientSession

    async def verify(self, type_id: int | str, *, multipart: bool = False,
                     **media: bytes) -> tuple[int, dict[str, Any]]:
        """Send media (field name -> bytes) as base64 form fields or multipart files."""
        fields = {**signed_fields(self.key, self.secret), "typeId": str(type_id)}
        if multipart:
            form = aiohttp.FormData()
            for name, value in fields.items():
                form.add_field(name, value)
            for name, data in media.items():
                form.add_field(name, data, filename=f"{name}.bin",
                               content_type="application/octet-stream")
            body: Any = form
        else:
            body = {**fields, **{n: base64.b64encode(d).decode() for n, d in media.items()}}
        async with self.session.post(f"{self.base_url}/api/verify", data=body) as resp:
            return resp.status, await resp.json()
