"""ICE consent freshness (service/rtc/aiortc_internals/consent.py) between two real aiortc peers on loopback.

The service side uses the consent loop with a short interval (0.5 s x 3 checks instead
of aioice's 5 s x 6) so the rule shows in seconds: a peer that answered consent and then
goes silent (a browser whose network went away) is still closed; a peer that never
answers once connected (FFmpeg's WHIP muxer; tests/test_kiosk.py runs the real one past
the expiry) is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection

from service.rtc.aiortc_internals.consent import tolerate_push_only_peers

INTERVAL_S, MAX_FAILURES = 0.5, 3
EXPIRY_S = INTERVAL_S * 1.2 * MAX_FAILURES  # the longest a silent peer may take to expire


def ice_connection(pc: RTCPeerConnection):  # the aioice Connection under aiortc
    return pc.sctp.transport.transport.iceGatherer._connection


async def wait_for(predicate, timeout: float) -> bool:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)
    return True


@dataclass
class Client:
    """The client side; `mute_after_connect`: once its ICE has connected it answers no
    binding request (what FFmpeg's WHIP muxer does), counted in `unanswered`."""

    pc: RTCPeerConnection
    mute_after_connect: bool = False
    unanswered: int = 0

    def hook(self) -> None:
        connection = ice_connection(self.pc)
        answer = connection.request_received

        def request_received(message, addr, protocol):  # type: ignore[no-untyped-def]
            # aioice starts a connection's own consent loop when its ICE has connected
            if self.mute_after_connect and connection._query_consent_task is not None:
                self.unanswered += 1
                return
            answer(message, addr, protocol)

        connection.request_received = request_received


async def connect(client: Client) -> RTCPeerConnection:
    """The service's side of a connection to `client`, with the short consent loop."""
    service = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client.pc.createDataChannel("liveness")
    await client.pc.setLocalDescription(await client.pc.createOffer())
    client.hook()
    await service.setRemoteDescription(client.pc.localDescription)
    tolerate_push_only_peers(service, INTERVAL_S, MAX_FAILURES)
    await service.setLocalDescription(await service.createAnswer())
    await client.pc.setRemoteDescription(service.localDescription)
    await wait_for(lambda: service.connectionState == client.pc.connectionState
                   == "connected", 20)
    return service


@pytest_asyncio.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await pc.close()


async def test_a_peer_that_answered_consent_and_went_silent_is_closed(pcs):
    client = Client(RTCPeerConnection(RTCConfiguration(iceServers=[])))
    pcs.append(client.pc)
    service = await connect(client)
    pcs.append(service)
    await asyncio.sleep(3 * INTERVAL_S)  # a few checks answered: a consenting peer
    for protocol in ice_connection(client.pc)._protocols:  # its network is gone
        protocol.transport.close()
    await wait_for(lambda: service.connectionState in ("failed", "closed"), EXPIRY_S + 5)


async def test_a_peer_that_never_answers_consent_stays_connected(pcs):
    client = Client(RTCPeerConnection(RTCConfiguration(iceServers=[])),
                    mute_after_connect=True)
    pcs.append(client.pc)
    service = await connect(client)
    pcs.append(service)
    await asyncio.sleep(3 * EXPIRY_S)
    # enough checks went unanswered to close a peer that had answered one
    assert client.unanswered > MAX_FAILURES
    assert service.connectionState == client.pc.connectionState == "connected"
