"""Decode uploaded video bytes into frames sampled at the analysis rate, within limits.

Why sample by timestamp rather than by frame count: uploads come at 25, 30, 60 fps or a
variable rate, and some containers leave holes (the ZJU .avi files drop "repeat" frames
that their constant-rate mp4 copies keep). The liveness cues are timed in seconds, so
picking the first frame at or after each 1/fps slot gives the same analysis whatever the
source rate, and a clip slower than the analysis rate simply keeps every frame.

Why limits are checked twice: a container header may lie or say nothing (streamed WebM,
raw MPEG), so size, duration and frame count are refused from the header when it knows
them (before any decoding work) and again from what the decoder actually produces.

Why a truncated upload still yields frames: the frames before the cut are genuine; the
caller decides whether what remains is long enough to judge. Only a stream from which
nothing decodes is BadMedia.

`decode_frames` runs inside a decoder worker process (`video_parts` is its job for
service.media.pool): FFmpeg parses client bytes where a crash costs one request.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import cv2
import numpy as np

from service.errors import BadMedia, TooLarge

# A frame counts for a slot when it is at most this fraction of a slot early: absorbs
# rates like 30.018 fps whose frames land a hair before the 15 fps slot boundaries
# (which would otherwise keep frames 0, 3, 5, 7, ...), while staying well under one
# source frame period for any source up to 150 fps.
_SLOT_TOLERANCE = 0.1


@dataclass(frozen=True)
class Frame:
    """One analysed frame: `index` is its position in decode order among all source
    frames, `t` its presentation time in seconds from the stream start, `image` BGR uint8
    with the longest side at most the requested `max_side`."""

    index: int
    t: float
    image: np.ndarray


@dataclass(frozen=True)
class ClipSettings:
    """Spec limits for uploaded videos (4013 past them). The bytes are bounded by the
    request body limit before a video gets here."""

    # 30 s: four times a liveness clip's usual length; longer only costs decoding time.
    max_duration_s: float = 30.0
    # 1080p (1920x1088 with the codec's 16-pixel macroblock padding); frames are
    # downscaled to the working size anyway.
    max_pixels: int = 1920 * 1088
    # 30 s at 120 fps: source frames decoded (not analysed), bounds the decoding work.
    max_frames: int = 3600


def frame_from_av(av_frame: av.VideoFrame, index: int, t: float, max_side: int) -> Frame:
    """Convert a decoded PyAV frame to a `Frame`, downscaled so its longest side fits.

    Shared with the WebRTC path so uploaded and streamed frames look the same to the
    landmarker. INTER_AREA because it averages instead of skipping pixels, which keeps
    thin structures like eyelids visible after a large downscale.
    """
    image: np.ndarray = av_frame.to_ndarray(format="bgr24")
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return Frame(index=index, t=t, image=np.ascontiguousarray(image))


def _check_header(container: av.container.InputContainer, stream: av.video.VideoStream,
                  limits: ClipSettings) -> None:
    if stream.codec_context is None:
        raise BadMedia("no decoder for the video stream's codec")
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limits.max_pixels:
        raise TooLarge(f"video resolution {width}x{height} is over the limit")
    duration_s: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    if duration_s is not None and duration_s > limits.max_duration_s:
        raise TooLarge(f"video lasts {duration_s:.0f} s, over {limits.max_duration_s:.0f} s")
    if stream.frames and stream.frames > limits.max_frames:
        raise TooLarge(f"video has {stream.frames} frames, over {limits.max_frames}")


def _decoded(container: av.container.InputContainer,
             stream: av.video.VideoStream) -> Iterator[av.VideoFrame]:
    """Every frame the decoder can produce, skipping what it cannot.

    Empty packets are skipped rather than decoded: an empty packet is FFmpeg's "flush"
    signal, so feeding one mid-stream (AVI "repeat" chunks) would end decoding early.
    The decoder is flushed once, explicitly, after the last packet.
    """
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            try:
                frames = codec.decode(packet)
            except av.FFmpegError:
                continue  # one damaged packet; the next keyframe recovers
            yield from frames
    except av.FFmpegError:
        pass  # demuxing stopped (truncated or damaged container): keep what decoded
    try:
        yield from codec.decode(None)
    except av.FFmpegError:
        pass


def decode_frames(data: bytes, fps: float = 15.0, max_side: int = 640,
                  limits: ClipSettings = ClipSettings()) -> Iterator[Frame]:
    """Frames of the first video stream in `data`, sampled at `fps` by timestamp.

    Raises TooLarge when the resolution, duration or frame count are over
    `limits` (from the header when it says, else while decoding) and BadMedia when the
    container cannot be opened, has no video stream or no frame decodes.
    """
    try:
        # ZJU-style AVIs carry non-UTF-8 metadata that PyAV refuses to read otherwise.
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise BadMedia(f"not a readable video container ({type(exc).__name__})") from None
    try:
        if not container.streams.video:
            raise BadMedia("the container has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        _check_header(container, stream, limits)
        step = 1.0 / fps
        origin: float | None = None
        if stream.start_time is not None and stream.time_base is not None:
            origin = float(stream.start_time * stream.time_base)
        rate = float(stream.guessed_rate or stream.average_rate or fps)
        next_slot = -math.inf
        last_t = -1.0 / rate
        kept = 0
        for index, av_frame in enumerate(_decoded(container, stream)):
            if index >= limits.max_frames:
                raise TooLarge(f"video has more than {limits.max_frames} frames")
            if av_frame.width * av_frame.height > limits.max_pixels:
                raise TooLarge(f"video frame {av_frame.width}x{av_frame.height} is over "
                               "the limit")
            if av_frame.pts is None or stream.time_base is None:
                t = last_t + 1.0 / rate  # no timestamp: assume the nominal rate
            else:
                # From pts and the stream's time base: frames drained by the final flush
                # come without a time base of their own (their `.time` is NaN).
                pts_s = float(av_frame.pts * stream.time_base)
                if origin is None:
                    origin = pts_s
                t = pts_s - origin
            last_t = t
            if t > limits.max_duration_s:
                raise TooLarge(f"video lasts over {limits.max_duration_s:.0f} s")
            if t < next_slot - _SLOT_TOLERANCE * step:
                continue
            next_slot = (math.floor(t / step + _SLOT_TOLERANCE) + 1) * step
            kept += 1
            yield frame_from_av(av_frame, index, t, max_side)
        if kept == 0:
            raise BadMedia("no video frame could be decoded")
    finally:
        container.close()


def video_parts(data: bytes, params: tuple[float, int, ClipSettings]
                ) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """The decoder-pool job: one part per analysed frame, its index and time as meta."""
    fps, max_side, limits = params
    for frame in decode_frames(data, fps, max_side, limits):
        yield {"index": frame.index, "t": frame.t}, frame.image
