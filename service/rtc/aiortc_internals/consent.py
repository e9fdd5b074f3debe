"""ICE consent freshness (RFC 7675) that push-only WHIP clients survive.

aioice (0.13, `Connection.query_consent`) sends a consent check on the nominated pair
every ~5 s once ICE has connected, and closes the connection after 6 unanswered checks
in a row (~30 s). FFmpeg's WHIP muxer (9.0) answers STUN only while it connects: every
consent check afterwards goes unanswered, so each FFmpeg session was closed after 30 s
as "peer disconnected", whatever its video.

Consent exists to protect the *remote* side: a sender must stop sending to an address
that no longer wants its traffic (RFC 7675 section 1). Here the service only receives
video; what it sends a peer is RTCP receiver reports, data-channel messages and the
checks themselves, a few hundred bytes a second. So:

- a peer that has answered at least one consent check (every browser) is held to the
  standard rule: when it stops answering, it is gone (a tab closed without a DTLS
  close alert, a lost network), and it is closed after the same ~30 s;
- a peer that has never answered one is taken as push-only: its connection is kept.
  Its life is bounded by the session instead: no video for `sessions.media_timeout_s`
  (10 s) decides the session and closes the peer, and so does the session's TTL.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable

from aioice import Connection, stun
from aioice.ice import CONSENT_FAILURES, CONSENT_INTERVAL
from aiortc import RTCPeerConnection

log = logging.getLogger("service.rtc")


async def _query_consent(connection: Connection, interval_s: float, max_failures: int
                         ) -> None:
    """aioice's consent loop, except that unanswered checks close the connection only
    once the peer has shown it answers them."""
    assert connection.remote_password is not None
    answered = False
    failures = 0
    while True:
        # randomised 0.8-1.2 x the interval, as aioice and RFC 7675 section 5.1 do
        await asyncio.sleep(interval_s * (0.8 + 0.4 * random.random()))
        for pair in list(connection._nominated.values()):
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request, pair.remote_addr,
                    integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=0)
                failures, answered = 0, True
            except stun.TransactionError:
                failures += 1
            if answered and failures >= max_failures:
                log.info("ICE consent expired: the peer stopped answering")
                connection._query_consent_task = None  # close() must not cancel us
                await connection.close()
                return


def _connections(pc: RTCPeerConnection) -> Iterable[Connection]:
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    return {id(c): c for c in (t.transport.iceGatherer._connection for t in transports)
            }.values()


def tolerate_push_only_peers(pc: RTCPeerConnection, interval_s: float = CONSENT_INTERVAL,
                             max_failures: int = CONSENT_FAILURES) -> None:
    """Use the consent loop above on the ICE connections of `pc`, with aioice's timing
    by default. Call it after setRemoteDescription (the transports exist) and before
    ICE has connected (aioice starts the loop then)."""
    for connection in _connections(pc):
        connection.query_consent = (  # type: ignore[method-assign]
            lambda c=connection: _query_consent(c, interval_s, max_failures))
