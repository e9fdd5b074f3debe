"""Latest-frame-wins intake of a remote video track.

aiortc decodes every received frame in its own thread and puts it on an unbounded
asyncio.Queue behind `track.recv()`. If analysis pulled frames only as fast as it can
analyse them, that queue (and latency, and memory) would grow without bound on a slow
CPU. So one cheap task drains the track continuously and keeps only the newest frame;
the analyser samples that slot at its own rate. A slow analyser lowers the analysed
frame rate, never the freshness of what it sees.
"""

from __future__ import annotations

import asyncio
import time

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame


class LatestFrame:
    def __init__(self, track: MediaStreamTrack) -> None:
        self._track = track
        self._frame: VideoFrame | None = None
        self._arrived_at = 0.0
        self._new = asyncio.Event()
        self._ended = False
        # frames aiortc delivered, and those replaced before the analyser took them
        self.received = 0
        self.dropped = 0
        self._task = asyncio.create_task(self._drain(), name="frame-intake")

    async def _drain(self) -> None:
        try:
            while True:
                frame = await self._track.recv()
                self.received += 1
                if self._frame is not None:
                    self.dropped += 1
                self._frame = frame
                self._arrived_at = time.monotonic()
                self._new.set()
        except MediaStreamError:
            pass
        finally:
            self._ended = True
            self._new.set()

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def last_arrival(self) -> float:
        return self._arrived_at

    async def next(self, timeout: float) -> VideoFrame | None:
        """The newest frame not yet taken; None at the end of the track or on timeout."""
        try:  # asyncio.timeout: 3.11's wait_for can lose a cancel (service/cluster/replica.py)
            async with asyncio.timeout(timeout):
                await self._new.wait()
        except TimeoutError:
            return None
        self._new.clear()
        frame, self._frame = self._frame, None
        return frame

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, MediaStreamError):
            pass
        self._frame = None
