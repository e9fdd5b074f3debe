"""The client's address behind a reverse proxy: X-Forwarded-For from trusted proxies only.

Behind a proxy every connection comes from the proxy, so the per-address lockout of
failed authentications (service/http/auth.py) would lock everyone out after one client's
mistakes, and the per-address connection cap would throttle the proxy. A request whose
connection comes from an address in `http.trusted_proxies` is attributed to the address
its proxy chain reports: X-Forwarded-For read from the right, skipping trusted proxies,
the first address that is not one (RFC 7239 section 5.2 explains why only the part
appended by proxies one trusts can be believed; a client can put anything on the left).
A request from anywhere else keeps its socket's address and its headers are ignored, so
a client cannot choose its own address by sending the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from functools import cache

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@cache
def networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks (`10.0.0.0/8`, `127.0.0.1`); ValueError on a bad one."""
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in trusted if t.strip())


def is_trusted(address: str | None, trusted: tuple[str, ...]) -> bool:
    if not address or not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in net for net in networks(trusted))


def client_address(peer: str | None, forwarded_for: list[str],
                   trusted: tuple[str, ...]) -> str | None:
    """The client address of a request from `peer` carrying these X-Forwarded-For
    header values (in order), given the trusted proxies."""
    if not is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a garbled chain: believe nothing of it
        if not is_trusted(hop, trusted):
            return hop
    return peer  # only proxies in the chain: the request came from one of them


def forwarded_middleware(trusted: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    networks(trusted)  # a bad entry fails at start-up, not on the first request

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if trusted and is_trusted(request.remote, trusted):
            client = client_address(request.remote,
                                    request.headers.getall("X-Forwarded-For", []), trusted)
            if client != request.remote:
                request = request.clone(remote=client)
        return await handler(request)
    return middleware
