"""User-space network impairment for tests and benches (this kernel has no netem).

A `Pipe` is one direction of a link: each datagram put into it is lost (at random, or in
bursts: a Gilbert-Elliott two-state chain), queued behind a token bucket (a capped
bandwidth with a tail-dropping queue), delayed with jitter (each packet independently,
so packets overtake each other: reordering), duplicated, or swallowed by a blackout,
then handed to a `deliver` callback on the event loop. A `Link` is both directions of
one path (`up`: client -> service, `down`: service -> client). Every setting is a field
of `Conditions`, which may be replaced at any moment (`Link.set`, `Link.for_seconds`):
the next datagram sees the new conditions, the ones already in flight keep theirs.

Two ways to put a link on a real media path, both over loopback:
- `impair_peer(pc, link)`: a hook on an aiortc peer's ICE transports (every UDP socket
  aioice holds for it): all that peer sends and receives goes through the link, so RTP,
  RTCP (NACK, PLI, reports), DTLS/SCTP (the data channel) and STUN (ICE checks, consent)
  are all impaired, as on a bad access network. Used by tests and benches with the
  aiortc client (testing/rtc_client.py `WhipClient(link=...)`).
- `UdpRelay`: a plain UDP relay (listen address -> target, replies back to the last
  sender) for clients that cannot be hooked (Chromium, FFmpeg): their candidates, or
  their target address, are pointed at the relay.

Randomness comes from a seeded generator per pipe, so a bench cell is repeatable given
the same packet sequence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# bytes an IPv4 + UDP header adds to each datagram on the wire (bandwidth accounting)
UDP_OVERHEAD = 28


@dataclass(frozen=True)
class Conditions:
    """What one direction does to the datagrams that enter it."""

    loss: float = 0.0  # probability each datagram is lost, independently
    # bursts (Gilbert-Elliott): probability a burst starts at a datagram, and the mean
    # burst length in datagrams (every datagram of a burst is lost)
    burst_start: float = 0.0
    burst_packets: float = 1.0
    delay_s: float = 0.0  # fixed one-way delay
    jitter_s: float = 0.0  # extra delay drawn uniformly in 0..jitter_s per datagram
    duplicate: float = 0.0  # probability a datagram is delivered twice
    rate_bps: float = 0.0  # bandwidth cap (token bucket); 0: none
    bucket_bytes: int = 16_000  # the bucket's depth: what may pass at once at line rate
    queue_s: float = 0.4  # a datagram that would wait longer for tokens is dropped
    blackout: bool = False  # everything is lost

    def __post_init__(self) -> None:
        for name in ("loss", "burst_start", "duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability")
        if self.burst_packets < 1.0 or min(self.delay_s, self.jitter_s, self.rate_bps,
                                           self.queue_s, self.bucket_bytes) < 0:
            raise ValueError("burst_packets >= 1, times and rates >= 0")


CLEAR = Conditions()


@dataclass
class PipeStats:
    offered: int = 0  # datagrams put into the pipe
    delivered: int = 0  # handed to `deliver` (duplicates included)
    lost: int = 0  # random loss
    lost_in_bursts: int = 0
    lost_in_queue: int = 0  # tail drop behind the bandwidth cap
    lost_in_blackout: int = 0
    duplicated: int = 0

    @property
    def dropped(self) -> int:
        return self.lost + self.lost_in_bursts + self.lost_in_queue + self.lost_in_blackout

    @property
    def loss_fraction(self) -> float:
        return self.dropped / self.offered if self.offered else 0.0


class Pipe:
    """One direction of a link (see the module docstring)."""

    def __init__(self, conditions: Conditions = CLEAR, seed: int = 0) -> None:
        self.conditions = conditions
        self.stats = PipeStats()
        self._rng = random.Random(seed)
        self._bad = False  # in a loss burst
        self._free_at = 0.0  # the token bucket's virtual clock (loop time)
        self._pending: set[asyncio.TimerHandle] = set()
        self._closed = False

    def send(self, data: bytes, deliver: Callable[[bytes], None]) -> None:
        c, rng, self.stats.offered = self.conditions, self._rng, self.stats.offered + 1
        if self._closed:
            return
        if c.blackout:
            self.stats.lost_in_blackout += 1
            return
        if self._bad or (c.burst_start and rng.random() < c.burst_start):
            # in a burst: it ends after each lost datagram with probability 1/length
            self._bad = rng.random() >= 1.0 / c.burst_packets
            self.stats.lost_in_bursts += 1
            return
        if c.loss and rng.random() < c.loss:
            self.stats.lost += 1
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        depart = now
        if c.rate_bps > 0:
            # tokens accrue at the rate up to the bucket's depth: the virtual clock may
            # lag `now` by at most the depth's worth of time
            start = max(self._free_at, now - c.bucket_bytes * 8 / c.rate_bps)
            finish = start + (len(data) + UDP_OVERHEAD) * 8 / c.rate_bps
            if finish - now > c.queue_s:
                self.stats.lost_in_queue += 1
                return
            self._free_at = finish
            depart = max(now, finish)
        copies = 2 if c.duplicate and rng.random() < c.duplicate else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            at = depart + c.delay_s + (rng.uniform(0.0, c.jitter_s) if c.jitter_s else 0.0)
            self._schedule(loop, at, data, deliver)

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float, data: bytes,
                  deliver: Callable[[bytes], None]) -> None:
        def fire() -> None:
            self._pending.discard(handle)
            if self._closed:
                return
            self.stats.delivered += 1
            deliver(data)
        if at <= loop.time() and not self._pending:
            self.stats.delivered += 1  # nothing queued ahead of it: no reordering
            deliver(data)
            return
        handle = loop.call_at(at, fire)
        self._pending.add(handle)

    def close(self) -> None:
        self._closed = True
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()


@dataclass
class Link:
    """Both directions of one path. `up` carries what the client sends."""

    up: Pipe = field(default_factory=lambda: Pipe(seed=1))
    down: Pipe = field(default_factory=lambda: Pipe(seed=2))
    _restore: list[asyncio.TimerHandle] = field(default_factory=list)

    @classmethod
    def seeded(cls, seed: int, conditions: Conditions = CLEAR,
               down: Conditions | None = None) -> Link:
        """Both directions with `conditions` (or `down` for the way back)."""
        return cls(Pipe(conditions, seed=2 * seed + 1),
                   Pipe(conditions if down is None else down, seed=2 * seed + 2))

    def set(self, **changes: Any) -> None:
        """Change settings of both directions from now on (e.g. set(blackout=True))."""
        for pipe in (self.up, self.down):
            pipe.conditions = dataclasses.replace(pipe.conditions, **changes)

    def for_seconds(self, seconds: float, **changes: Any) -> None:
        """`set(**changes)` now, and back to the present settings after `seconds`."""
        before = (self.up.conditions, self.down.conditions)
        self.set(**changes)

        def restore() -> None:
            self.up.conditions, self.down.conditions = before
        self._restore.append(asyncio.get_running_loop().call_later(seconds, restore))

    def close(self) -> None:
        for handle in self._restore:
            handle.cancel()
        self.up.close()
        self.down.close()


# --- on an aiortc peer --------------------------------------------------------------------


class _ImpairedTransport:
    """A datagram transport whose sendto goes through a pipe first."""

    def __init__(self, inner: Any, pipe: Pipe) -> None:
        self._inner = inner
        self._pipe = pipe

    def sendto(self, data: bytes, addr: Any = None) -> None:
        def send(d: bytes) -> None:
            if not self._inner.is_closing():
                self._inner.sendto(d, addr)
        self._pipe.send(bytes(data), send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _ice_connections(pc: Any) -> Iterable[Any]:
    transports = [t.sender.transport for t in pc.getTransceivers() if t.sender.transport]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    return {id(c): c for c in (t.transport.iceGatherer._connection for t in transports)
            }.values()


def impair_peer(pc: Any, link: Link) -> int:
    """Put `link` on every socket of an aiortc RTCPeerConnection's ICE transports
    (call after setLocalDescription: the sockets exist once candidates are gathered);
    returns how many sockets were hooked. What the peer sends goes through `link.up`,
    what it receives through `link.down`."""
    hooked = 0
    for connection in _ice_connections(pc):
        for protocol in connection._protocols:
            if getattr(protocol, "_impaired", False) or not hasattr(protocol, "transport"):
                continue
            protocol.transport = _ImpairedTransport(protocol.transport, link.up)
            received = protocol.datagram_received

            def on_datagram(data: bytes, addr: Any, received: Any = received) -> None:
                link.down.send(bytes(data), lambda d: received(d, addr))
            protocol.datagram_received = on_datagram
            protocol._impaired = True
            hooked += 1
    return hooked


# --- as a UDP relay -------------------------------------------------------------------------


class _RelaySide(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Any], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, addr)


class UdpRelay:
    """A UDP relay on loopback: datagrams to `address` go to `target` through
    `link.up` (from the relay's own upstream socket); datagrams coming back from the
    target go through `link.down` to the client that sent last."""

    def __init__(self, target: tuple[str, int], link: Link, host: str = "127.0.0.1") -> None:
        self.target = target
        self.link = link
        self.host = host
        self.client: Any = None  # the last sender's address
        self._front: _RelaySide | None = None
        self._back: _RelaySide | None = None

    async def start(self) -> UdpRelay:
        loop = asyncio.get_running_loop()
        _, self._front = await loop.create_datagram_endpoint(
            lambda: _RelaySide(self._from_client), local_addr=(self.host, 0))
        _, self._back = await loop.create_datagram_endpoint(
            lambda: _RelaySide(self._from_target), local_addr=(self.host, 0))
        return self

    @property
    def address(self) -> tuple[str, int]:
        assert self._front is not None and self._front.transport is not None
        return self._front.transport.get_extra_info("sockname")[:2]

    def _from_client(self, data: bytes, addr: Any) -> None:
        self.client = addr
        back = self._back

        def send(d: bytes) -> None:
            if back is not None and back.transport is not None and \
                    not back.transport.is_closing():
                back.transport.sendto(d, self.target)
        self.link.up.send(data, send)

    def _from_target(self, data: bytes, addr: Any) -> None:
        if addr[:2] != self.target[:2] or self.client is None:
            return  # only the target's datagrams go back, and only to a known client
        front, client = self._front, self.client

        def send(d: bytes) -> None:
            if front is not None and front.transport is not None and \
                    not front.transport.is_closing():
                front.transport.sendto(d, client)
        self.link.down.send(data, send)

    def close(self) -> None:
        self.link.close()
        for side in (self._front, self._back):
            if side is not None and side.transport is not None:
                side.transport.close()
