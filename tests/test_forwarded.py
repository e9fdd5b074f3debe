"""Clients behind a reverse proxy: X-Forwarded-For believed from trusted proxies only.

Behind deploy/'s proxy every connection comes from the proxy: without this, one
client's failed authentications would lock every client out (the lockout counts per
address), and a client could not escape its own lockout by sending the header itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from conftest import KEY, make_config, start_server, status_of

from service.http.forwarded import client_address, forwarded_middleware, is_trusted

PROXY = ("127.0.0.1", "10.0.0.0/8")


@pytest.mark.parametrize("peer,chain,expected", [
    ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("127.0.0.1", ["198.51.100.1, 203.0.113.7"], "203.0.113.7"),  # the proxy's append
    ("127.0.0.1", ["203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # a second trusted hop
    ("127.0.0.1", ["203.0.113.7", "10.1.2.3"], "203.0.113.7"),  # repeated header
    ("127.0.0.1", ["2001:db8::1"], "2001:db8::1"),
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["10.9.9.9"], "127.0.0.1"),  # only proxies: one of them asked
    ("127.0.0.1", ["203.0.113.7, not-an-ip"], "127.0.0.1"),  # garbled: believe nothing
    ("192.0.2.5", ["203.0.113.7"], "192.0.2.5"),  # not a proxy: the header is ignored
])
def test_client_address_is_the_first_untrusted_hop_from_the_right(peer, chain, expected):
    assert client_address(peer, chain, PROXY) == expected


def test_nothing_is_trusted_by_default():
    assert not is_trusted("127.0.0.1", ())
    assert client_address("127.0.0.1", ["203.0.113.7"], ()) == "127.0.0.1"


def test_a_bad_proxy_entry_fails_at_start_up():
    with pytest.raises(ValueError):
        forwarded_middleware(("10.0.0.0/33",))


@pytest_asyncio.fixture
async def proxied() -> AsyncIterator:
    server = await start_server(make_config(auth__max_failed_auth=3,
                                            http__trusted_proxies=("127.0.0.1",)))
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest_asyncio.fixture
async def direct() -> AsyncIterator:
    server = await start_server(make_config(auth__max_failed_auth=3))
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def bad_login(http: aiohttp.ClientSession, url: str, client: str | None) -> str:
    headers = {"X-Forwarded-For": client} if client else {}
    form = {"key": KEY, "timestamp": "1", "token": "0" * 64, "typeId": "21"}
    async with http.post(f"{url}/api/verify", data=form, headers=headers) as resp:
        return status_of(await resp.json())


async def test_behind_a_trusted_proxy_each_client_has_its_own_lockout(http, proxied):
    assert [await bad_login(http, proxied, "203.0.113.7") for _ in range(4)] == \
        ["4010", "4010", "4010", "4290"]
    assert await bad_login(http, proxied, "203.0.113.8") == "4010"  # another client
    assert await bad_login(http, proxied, "198.51.100.9, 203.0.113.7") == "4290"


async def test_without_a_trusted_proxy_the_header_changes_nothing(http, direct):
    """A client cannot escape its lockout by claiming another address."""
    got = [await bad_login(http, direct, f"203.0.113.{i}") for i in range(4)]
    assert got == ["4010", "4010", "4010", "4290"]
