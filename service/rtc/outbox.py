"""Where a session's messages go: its `liveness` data channel and its events streams.

The runner sends each message once, here; the outbox writes it to the data channel if
that is open and queues it for every events-stream subscriber (GET .../events). It
answers, per message, whether anyone could have received it: that is how a prompt is
known to have been deliverable (issue 11: a recording pushed with no data channel and no
screen watching never saw its prompts, so it cannot pass them).

Memory stays bounded whatever the clients do: at most `max_subscribers` streams, each
with a bounded queue (a reader that falls that far behind is dropped, its stream ends
and it may reconnect), and a bounded backlog of the messages already sent, which a
subscriber that attaches late receives first (a screen paired with a push-only WHIP
client sees the prompt that is showing now).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from service.errors import RateLimited
from service.rtc.messages import Message, encode


@dataclass(frozen=True)
class OutboxSettings:
    # Events streams one session may have at once: a screen, a backend watching, and
    # room for a reconnect before the old stream is noticed gone.
    max_subscribers: int = 4
    # Messages queued per stream. A session sends ~10-30 (prompts, releases, progress
    # changes, result); a reader 64 behind is not reading: it is dropped.
    queue: int = 64
    # Messages kept for a stream that attaches late (it receives them first).
    backlog: int = 32
    # An SSE comment line is sent when nothing else was for this long: keeps proxies
    # from closing an idle stream and notices a reader that went away.
    heartbeat_s: float = 15.0


class DataChannel(Protocol):
    """What the outbox needs of a WebRTC data channel (aiortc's RTCDataChannel)."""

    @property
    def readyState(self) -> str: ...

    def send(self, data: str) -> None: ...


@dataclass(frozen=True)
class Delivery:
    """Who a message reached when it was sent."""

    data_channel: bool
    subscribers: int

    @property
    def reached(self) -> bool:
        return self.data_channel or self.subscribers > 0

    def to_json(self) -> dict[str, object]:
        return {"data_channel": self.data_channel, "events_subscribers": self.subscribers}


class Subscriber:
    """One events stream's queue of encoded messages; None marks its end."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=size + 1)
        self.size = size

    def put(self, text: str) -> bool:
        """Queue a message; False when the reader is `size` messages behind."""
        if self.queue.qsize() >= self.size:
            return False
        self.queue.put_nowait(text)
        return True

    def end(self) -> None:
        """End the stream after what is queued (the +1 slot is for this marker)."""
        self.queue.put_nowait(None)

    def drop(self) -> None:
        """End the stream now: what was queued is discarded."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self, timeout: float) -> str | None:
        """The next message; "" when none came within `timeout`; None at the end."""
        try:  # asyncio.timeout: 3.11's wait_for can lose a cancel (service/cluster/replica.py)
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return ""


@dataclass
class Outbox:
    limits: OutboxSettings = field(default_factory=OutboxSettings)
    channel: DataChannel | None = None
    subscribers: list[Subscriber] = field(default_factory=list)
    closed: bool = False
    backlog: deque[str] = field(init=False)

    def __post_init__(self) -> None:
        self.backlog = deque(maxlen=self.limits.backlog)

    def attach_channel(self, channel: DataChannel) -> None:
        """The client's `liveness` data channel (the first one it opened)."""
        if self.channel is None and not self.closed:
            self.channel = channel

    @property
    def deliverable(self) -> bool:
        """Would a message sent now reach anyone (an open data channel, a subscriber)?"""
        return bool(self.subscribers) or (self.channel is not None
                                          and self.channel.readyState == "open")

    def send(self, message: Message) -> Delivery:
        text = encode(message)
        self.backlog.append(text)
        # checked and sent in one step of the event loop: the channel cannot close in
        # between, and a send to a channel that is not open is simply not made
        on_channel = self.channel is not None and self.channel.readyState == "open"
        if on_channel:
            assert self.channel is not None
            self.channel.send(text)
        reached = 0
        for subscriber in list(self.subscribers):
            if subscriber.put(text):
                reached += 1
            else:  # a slow reader: dropped rather than buffered without bound
                self.subscribers.remove(subscriber)
                subscriber.drop()
        return Delivery(on_channel, reached)

    def subscribe(self) -> Subscriber:
        """A new events stream, primed with the backlog (and ended at once if the
        session is over); RateLimited when the session has its maximum of streams."""
        if len(self.subscribers) >= self.limits.max_subscribers:
            raise RateLimited("too many event streams for this session")
        subscriber = Subscriber(max(self.limits.queue, self.limits.backlog))
        for text in self.backlog:
            subscriber.put(text)
        if self.closed:
            subscriber.end()
        else:
            self.subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def close(self) -> None:
        """No more messages: every stream ends after what it has queued, and the data
        channel is let go (a decided session is kept for its result for minutes; its
        channel would keep the whole peer connection alive with it)."""
        self.closed = True
        self.channel = None
        for subscriber in self.subscribers:
            subscriber.end()
        self.subscribers.clear()
