"""GET /openapi.json: the API's OpenAPI 3.1 description, kept beside the code that serves it.

The document (service/http/openapi.json) is written by hand and is the contract integrators
generate clients from; tests/test_openapi.py checks it is valid OpenAPI 3.1, that it and
the app's router list the same operations, and runs Schemathesis against the live
server with it. Read once when the app is built, served as the same bytes every time.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

DOCUMENT = Path(__file__).with_name("openapi.json")


def add_openapi_route(app: web.Application) -> None:
    body = DOCUMENT.read_bytes()

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "no-cache"})

    app.router.add_get("/openapi.json", openapi)
