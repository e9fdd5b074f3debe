"""The user-space impairment layer itself (testing/netimpair.py), through its UDP relay with
real sockets on loopback: what goes in comes out lost, late, reordered, twice or
throttled as configured, in both directions, and settings change mid-stream."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from testing.netimpair import Conditions, Link, Pipe, UdpRelay


class Endpoint(asyncio.DatagramProtocol):
    """A UDP socket that records what it receives (and when, loop time); an echo
    server answers each datagram with `echo:` + datagram."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.got: list[tuple[bytes, float]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.changed = asyncio.Event()

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport

    def datagram_received(self, data, addr):  # type: ignore[no-untyped-def]
        self.got.append((data, asyncio.get_running_loop().time()))
        self.changed.set()
        if self.echo and self.transport is not None:
            self.transport.sendto(b"echo:" + data, addr)

    async def wait_for(self, count: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.got) < count:
                self.changed.clear()
                await self.changed.wait()

    async def settle(self, quiet_s: float = 0.3, timeout: float = 20.0) -> None:
        """Until nothing more arrives for `quiet_s` (bounded by `timeout`)."""
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                try:
                    async with asyncio.timeout(quiet_s):
                        await self.changed.wait()
                except TimeoutError:
                    return

    @property
    def payloads(self) -> list[bytes]:
        return [d for d, _ in self.got]


async def endpoint(echo: bool = False) -> Endpoint:
    _, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Endpoint(echo), local_addr=("127.0.0.1", 0), family=socket.AF_INET)
    return proto


@pytest_asyncio.fixture
async def path() -> AsyncIterator[tuple[Endpoint, Endpoint, UdpRelay, Link]]:
    server, client = await endpoint(echo=True), await endpoint()
    assert server.transport is not None
    link = Link.seeded(7)
    relay = await UdpRelay(server.transport.get_extra_info("sockname")[:2], link).start()
    yield server, client, relay, link
    relay.close()
    for e in (server, client):
        assert e.transport is not None
        e.transport.close()


def send(client: Endpoint, relay: UdpRelay, count: int, size: int = 100,
         start: int = 0) -> None:
    assert client.transport is not None
    for i in range(start, start + count):
        client.transport.sendto(i.to_bytes(4, "big") + bytes(size - 4), relay.address)


async def paced(client: Endpoint, relay: UdpRelay, count: int, batch: int = 50) -> None:
    """`count` datagrams in batches, each once the relay has taken the one before
    (all at once would overflow the kernel's socket buffers: a loss not ours)."""
    for start in range(0, count, batch):
        offered = relay.link.up.stats.offered
        send(client, relay, min(batch, count - start), start=start)
        async with asyncio.timeout(20):
            while relay.link.up.stats.offered < offered + min(batch, count - start):
                await asyncio.sleep(0.01)


def numbers(payloads: list[bytes]) -> list[int]:
    return [int.from_bytes(p[:4], "big") for p in payloads]


async def test_a_clear_link_relays_everything_in_order_both_ways(path):
    server, client, relay, link = path
    send(client, relay, 200)
    await server.wait_for(200)
    await client.wait_for(200)
    assert numbers(server.payloads) == list(range(200))
    assert all(p.startswith(b"echo:") for p in client.payloads)
    assert link.up.stats.delivered == link.down.stats.delivered == 200


async def test_random_loss_drops_about_the_set_share(path):
    server, client, relay, link = path
    link.set(loss=0.2)
    await paced(client, relay, 1000)
    await server.settle()
    # up: 20% of 1000 lost (binomial, 5 standard deviations either side)
    assert link.up.stats.offered == 1000
    assert 130 <= 1000 - len(server.got) <= 270
    assert link.up.stats.lost == 1000 - len(server.got)
    await client.settle()
    # the echoes cross the lossy way back too
    assert len(client.got) < len(server.got)


async def test_bursts_lose_runs_of_datagrams(path):
    server, client, relay, link = path
    link.up.conditions = Conditions(burst_start=0.02, burst_packets=8)
    await paced(client, relay, 2000)
    await server.settle()
    got = set(numbers(server.payloads))
    runs, run = [], 0
    for i in range(2000):
        if i in got:
            if run:
                runs.append(run)
            run = 0
        else:
            run += 1
    assert runs and sum(runs) == link.up.stats.lost_in_bursts
    # geometric bursts of mean 8: mostly several datagrams long, not single losses
    assert sum(runs) / len(runs) > 4


async def test_delay_and_jitter_delay_every_datagram_and_reorder_them(path):
    server, client, relay, link = path
    link.up.conditions = Conditions(delay_s=0.05, jitter_s=0.1)
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    send(client, relay, 100)
    await server.wait_for(100)
    assert sorted(numbers(server.payloads)) == list(range(100))
    assert numbers(server.payloads) != list(range(100))  # they overtook each other
    assert min(t for _, t in server.got) >= sent_at + 0.05


async def test_duplicates_arrive_twice(path):
    server, client, relay, link = path
    link.up.conditions = Conditions(duplicate=1.0)
    send(client, relay, 50)
    await server.wait_for(100)
    assert sorted(numbers(server.payloads)) == sorted(list(range(50)) * 2)


async def test_a_bandwidth_cap_queues_then_drops_what_exceeds_it(path):
    server, client, relay, link = path
    # 100 kbit/s, a 2000 byte bucket, 0.2 s of queue: of 100 datagrams of 500 bytes
    # sent at once, the bucket and the queue take (2000 + 100e3/8 * 0.2) bytes ~= 8
    link.up.conditions = Conditions(rate_bps=100_000, bucket_bytes=2000, queue_s=0.2)
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    send(client, relay, 100, size=500)
    await server.settle(quiet_s=0.5)
    assert 5 <= len(server.got) <= 10
    assert link.up.stats.lost_in_queue == 100 - len(server.got)
    # the last ones through waited in the queue, paced at the rate
    assert max(t for _, t in server.got) >= sent_at + 0.1
    assert numbers(server.payloads) == sorted(numbers(server.payloads))


async def test_settings_change_mid_stream_and_a_blackout_ends_on_time(path):
    server, client, relay, link = path
    send(client, relay, 10)
    await server.wait_for(10)
    link.for_seconds(0.5, blackout=True)
    send(client, relay, 10, start=10)
    await client.settle()
    assert len(server.got) == 10 and link.up.stats.lost_in_blackout == 10
    async with asyncio.timeout(20):  # bounded: the blackout ends after 0.5 s
        while link.up.conditions.blackout:
            await asyncio.sleep(0.05)
    send(client, relay, 10, start=20)
    await server.wait_for(20)
    assert numbers(server.payloads) == list(range(10)) + list(range(20, 30))


async def test_conditions_refuse_nonsense():
    with pytest.raises(ValueError):
        Conditions(loss=1.5)
    with pytest.raises(ValueError):
        Conditions(burst_packets=0.5)
    with pytest.raises(ValueError):
        Conditions(delay_s=-1)


async def test_a_closed_pipe_delivers_nothing_more():
    pipe = Pipe(Conditions(delay_s=0.2))
    out: list[bytes] = []
    pipe.send(b"x", out.append)
    pipe.close()
    pipe.send(b"y", out.append)
    await asyncio.sleep(0)  # nothing is due yet; the handle was cancelled
    assert out == [] and pipe.stats.offered == 2 and pipe.stats.delivered == 0
