"""Short-lived TURN credentials: coturn's shared secret (the "TURN REST API").

Why: a static TURN user and password handed to every client is a relay anyone may use
for ever once one session answer was read. With `use-auth-secret` and
`static-auth-secret=SECRET`, coturn accepts a username `EXPIRY:NAME` (EXPIRY a Unix
time) whose password is base64(HMAC-SHA1(SECRET, username)), until EXPIRY; it keeps no
user database. The service holds the same secret and gives each session a pair of its
own, valid until the session expires (draft-uberti-behave-turn-rest-00 section 2.2;
coturn's `turnserver` manual, "--use-auth-secret"). coturn checks the expiry when an
allocation is made: an expired or forged pair gets no relay (401), while an allocation
made in time is refreshed for as long as its client keeps it (measured with coturn
4.6.1: a Refresh 5 s after the expiry succeeded), so a session that runs up to its
TTL is not cut off, and a leaked pair starts no relay once the session is over (the
client that allocated in time could keep its one relay alive by refreshing it).

The `ice_servers` setting names the TURN server without credentials
(`turn:host:3478?transport=udp`) and `turn.secret` (SERVICE_TURN__SECRET) holds the
secret. A TURN entry that carries its own `USER:PASSWORD@` keeps them: the static form,
kept so existing deployments still start, gives every client the same long-lived
password (README "Scaling out").
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import math
from dataclasses import dataclass, field

from service.rtc.peer import IceServer


@dataclass(frozen=True)
class TurnSettings:
    # coturn's static-auth-secret, the same on every replica and on coturn. Set: each
    # session's TURN entries (those of ice_servers written without credentials) carry
    # a username and password of their own. Never logged (not even in the Config's repr).
    secret: str = field(default="", repr=False)
    # Seconds the credentials outlive the session's expiry: the clocks of the service
    # and coturn may differ (NTP keeps them within well under a second; this allows for
    # a host whose sync lapsed), and a client offering in the last seconds of its TTL
    # still gets its allocation. Allocations made in time live on (see above).
    grace_s: float = 10.0


def rest_credentials(secret: str, name: str, expires_at: float) -> tuple[str, str]:
    """(username, password) coturn's use-auth-secret accepts until `expires_at` (Unix
    time, rounded up to the second): `EXPIRY:name`, base64(HMAC-SHA1(secret, username))."""
    username = f"{math.ceil(expires_at)}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def needs_secret(server: IceServer) -> bool:
    """A TURN entry written without credentials: they come from the shared secret."""
    return server.url.startswith(("turn:", "turns:")) and server.username is None


def check(servers: tuple[IceServer, ...], settings: TurnSettings) -> None:
    """Refuse at start a TURN entry that would get no credentials (coturn would refuse
    every allocation, and the failure would show only as sessions without media)."""
    if not settings.secret and any(needs_secret(s) for s in servers):
        raise ValueError("ice_servers: a TURN entry without credentials needs turn.secret "
                         "(SERVICE_TURN__SECRET, coturn's static-auth-secret), or write "
                         "them in the URL as turn:USER:PASSWORD@host:port")


def for_session(servers: tuple[IceServer, ...], settings: TurnSettings, session_id: str,
                expires_at: float) -> tuple[IceServer, ...]:
    """`servers` with each credential-less TURN entry given the session's own pair,
    valid until `expires_at` plus the grace. Deterministic: the answer to the client
    and the service's own peer connection get the same pair without storing it."""
    if not settings.secret:
        return servers
    username, password = rest_credentials(settings.secret, session_id,
                                          expires_at + settings.grace_s)
    return tuple(dataclasses.replace(s, username=username, credential=password)
                 if needs_secret(s) else s for s in servers)
