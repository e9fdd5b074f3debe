"""The floor for bench/stream_load.py: a bare aiortc WHIP receiver that only decodes
and converts every frame to BGR (what any analysis must pay before it starts).

    python bench/_floor_receiver.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

PEERS: set[RTCPeerConnection] = set()


async def consume(track) -> None:  # type: ignore[no-untyped-def]
    try:
        while True:
            frame = await track.recv()
            frame.to_ndarray(format="bgr24")
    except MediaStreamError:
        pass


async def offer(request: web.Request) -> web.Response:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    PEERS.add(pc)
    pc.on("track", lambda track: asyncio.ensure_future(consume(track)))
    await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return web.Response(status=201, text=pc.localDescription.sdp,
                        content_type="application/sdp", headers={"Location": "/whip"})


async def close_all(request: web.Request) -> web.Response:
    for pc in list(PEERS):
        await pc.close()
    PEERS.clear()
    return web.Response(text="ok")


app = web.Application()
app.router.add_post("/whip", offer)
app.router.add_post("/close", close_all)
app.router.add_get("/readyz", lambda r: web.Response(text="ok"))

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
