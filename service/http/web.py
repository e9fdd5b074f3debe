"""Serve the browser onboarding page (web/) with a strict Content-Security-Policy.

`/` answers web/index.html and `/web/{file}` the page's own files (one flat folder, no
sub-paths). Nothing is cached (`no-store`): the page may carry a session token in its
URL. The policy allows only this origin's scripts, styles and connections, camera video
as `blob:`/MediaStream, and no framing. The one inline script we ship (the 10-line
integration example) is allowed by its sha256 hash, computed from the file itself so
editing it cannot silently break it (CSP Level 3, "hash-source").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from pathlib import Path

from aiohttp import web

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# One flat folder: a name is letters, digits, '-', '_' and '.', never starting with '.'.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL)

COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # The page URL may carry `?session=` with a bearer token: never send it onwards.
    "Referrer-Policy": "no-referrer",
}


def content_security_policy(html: bytes) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    script_src = f"'self' {hashes}".strip()
    return (
        "default-src 'self'; "
        f"script-src {script_src}; "
        "style-src 'self'; "
        "img-src 'self' blob: data:; "
        "media-src 'self' blob:; "
        "connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _response(path: Path, body: bytes) -> web.Response:
    headers = dict(COMMON_HEADERS)
    headers["Content-Type"] = CONTENT_TYPES[path.suffix]
    if path.suffix == ".html":
        headers["Content-Security-Policy"] = content_security_policy(body)
        headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
    else:
        # verify.js and its stylesheet may be imported by an integrator's page.
        headers["Access-Control-Allow-Origin"] = "*"
    return web.Response(body=body, headers=headers)


def add_web_routes(app: web.Application, web_dir: Path) -> None:
    """Serve `/` (index.html) and `/web/{file}` from web_dir."""
    root = web_dir.resolve()

    async def read(path: Path) -> web.Response:
        if path.suffix not in CONTENT_TYPES or not path.is_file():
            raise web.HTTPNotFound()
        return _response(path, await asyncio.to_thread(path.read_bytes))

    async def index(request: web.Request) -> web.Response:
        return await read(root / "index.html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if not _SAFE_NAME.match(name):
            raise web.HTTPNotFound()
        return await read(root / name)

    app.router.add_get("/", index)
    app.router.add_get("/web/{file}", asset)
