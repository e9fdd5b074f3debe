"""The load generator of bench/stream_load.py: N WHIP peers that cost almost nothing.

Each process encodes the clip once (H.264 or VP8, keyframe every second, the first
frame a keyframe so the loop restarts cleanly), then every peer relays those same
packets in real time: `PacketTrack.recv()` yields `av.Packet`s, which aiortc's
RTCRtpSender packetises without encoding (`_next_encoded_frame`: anything that is not
a Frame goes to the codec's `pack()`). Timestamps are honest: packet k of a peer is
sent at start + k / fps with pts k * 90000 / fps, looping over the clip. What a peer
still costs here is RTP packetisation, SRTP, ICE/DTLS and the data channel.

Modes:
  session  create a session (`challenges=0`: a relayed clip cannot follow prompts),
           stream into it until its `result` arrives; repeat until `--until` (soak)
  floor    stream into bench/_floor_receiver.py's /whip for `--seconds` (no session)

Prints one JSON object on stdout at the end: {"sessions": [...]} or {"floor": ...}.
Times are time.monotonic(), which is system-wide on Linux, so the parent can line
them up with its CPU samples of the service.

    python bench/_load_clients.py --url URL --n 8 [--codec H264] [--mode session]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from testing.rtc_client import WhipClient, create_session
from testing.service_process import DATA, KEY, SECRET

CLIP = "blink/zju/000001M_FBN.mp4"
VIDEO_CLOCK = 90000  # RTP clock rate of video (RFC 3551)


def clip_frames_of(path: Path, fps: float, size: tuple[int, int] = (640, 480)
                   ) -> list[np.ndarray]:
    """A clip's frames at `fps` (the first source frame at or after each slot, so a
    blink keeps its real duration), upscaled to `size`."""
    with av.open(io.BytesIO(path.read_bytes()), metadata_errors="ignore") as box:
        decoded = [(float(f.time or 0.0), f.to_ndarray(format="bgr24"))
                   for f in box.decode(video=0)]
    frames, next_t = [], 0.0
    for t, image in decoded:
        if t + 1e-3 >= next_t:
            frames.append(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
            next_t += 1.0 / fps
    return frames


def encode_once(frames: list[np.ndarray], codec: str, fps: float) -> list[bytes]:
    """One packet per frame, as the browser's encoder would send them: H.264 Baseline
    (Annex B, SPS/PPS repeated before every IDR) or VP8 in real-time mode (no
    alt-ref frames, so every packet is one shown frame); a keyframe every second."""
    name = "libx264" if codec == "H264" else "libvpx"
    options = ({"tune": "zerolatency", "preset": "veryfast", "level": "31"} if codec == "H264"
               else {"deadline": "realtime", "lag-in-frames": "0", "auto-alt-ref": "0",
                     "cpu-used": "8"})
    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height = frames[0].shape[1], frames[0].shape[0]
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    ctx.framerate = fractions.Fraction(round(fps * 1000), 1000)
    ctx.bit_rate = 1_000_000  # aiortc's default target for its own encoders
    ctx.gop_size = max(1, round(fps))
    ctx.max_b_frames = 0
    if codec == "H264":
        ctx.profile = "Baseline"
    ctx.options = options
    packets: list[bytes] = []
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = round(i * VIDEO_CLOCK / fps)
        frame.time_base = ctx.time_base
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    if len(packets) != len(frames):
        raise RuntimeError(f"{name}: {len(packets)} packets for {len(frames)} frames")
    return packets


class PacketTrack(MediaStreamTrack):
    """Pre-encoded packets looped in real time, like a camera whose encoder costs
    nothing."""

    kind = "video"

    def __init__(self, packets: list[bytes], fps: float) -> None:
        super().__init__()
        self.packets = packets
        self.fps = fps
        self.sent = 0
        # when aiortc asked for the first packet (the DTLS handshake is done by then)
        self.started_at: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.started_at is None:
            self.started_at = time.monotonic()
        due = self.started_at + self.sent / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        packet = av.Packet(self.packets[self.sent % len(self.packets)])
        packet.pts = round(self.sent * VIDEO_CLOCK / self.fps)
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent += 1
        return packet


def first_face_at(client: WhipClient) -> float | None:
    """When the client learnt that the service sees a face: the runner sends this
    progress message right after the first analysed frame with a face (the observation
    time counts from that frame's sampling, a little earlier)."""
    for message, at in zip(client.messages, client.received_at):
        if message["type"] == "progress" and message.get("faces"):
            return at
    return None


async def one_session(http: aiohttp.ClientSession, url: str, packets: list[bytes],
                      args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    status, session = await create_session(http, url, args.key, args.secret,
                                           challenges="0")
    if status != 201:
        return {"error": f"{status} {session.get('messageString')}", "started": started}
    client = WhipClient(session, http, codec=args.codec)
    track = PacketTrack(packets, args.fps)
    try:
        if await client.connect(track) != 201:
            return {"error": "WHIP offer refused", "started": started}
        payload = await asyncio.wait_for(client.result, args.timeout)
    except TimeoutError:
        return {"error": "no result", "started": started}
    finally:
        await client.hang_up()
    kinds = [m["type"] for m in client.messages]
    result_at = client.received_at[kinds.index("result")]
    deciding_at = client.received_at[kinds.index("deciding")] if "deciding" in kinds \
        else None
    face_at = first_face_at(client)
    detail = payload.get("detail", {})
    items = {i["desc"]: i["content"] for i in (payload.get("infoList") or [{}])[0]
             .get("veritem", [])}
    # The service watches from its first analysed frame with a face, which it sampled
    # after our first packet left and before its progress message reached us: the
    # observation ended between these two bounds.
    first_sent = track.started_at or started
    return {"started": started, "face_at": face_at, "deciding_at": deciding_at,
            "result_at": result_at,
            "observation_end": None if face_at is None else first_sent + args.observation,
            "observation_end_late": None if face_at is None else face_at + args.observation,
            "analysed_fps": detail.get("analysed_fps"),
            "frames_analysed": detail.get("frames_analysed"),
            "stream_seconds": detail.get("stream_seconds"),
            "ended_by": detail.get("ended_by"), "live": items.get("Live or not"),
            "reasons": detail.get("reasons", []),
            "owner": session["whip_url"].split("/v1/")[0]}


async def sessions(urls: list[str], packets: list[bytes], args: argparse.Namespace
                   ) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    async def peer(i: int) -> None:
        await asyncio.sleep(i * args.stagger)
        url = urls[i % len(urls)]
        while True:
            results.append(await one_session(http, url, packets, args))
            if time.monotonic() >= args.until:
                return

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(peer(i) for i in range(args.n)))
    return results


async def floor(url: str, packets: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        clients = [WhipClient({"whip_url": f"{url}/whip", "session_token": "-"}, http,
                              codec=args.codec) for _ in range(args.n)]
        for client in clients:
            await client.connect(PacketTrack(packets, args.fps), data_channel=False)
        streaming = time.monotonic()
        await asyncio.sleep(args.seconds)
        for client in clients:
            await client.hang_up()
    return {"streaming": streaming, "ended": time.monotonic()}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    packets = encode_once(clip_frames_of(DATA / CLIP, args.fps), args.codec, args.fps)
    print(json.dumps({"ready": time.monotonic(), "packets": len(packets),
                      "bytes": sum(map(len, packets))}), flush=True)
    if args.mode == "floor":
        return {"floor": await floor(args.url[0], packets, args)}
    return {"sessions": await sessions(args.url, packets, args)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", nargs="+", required=True,
                        help="service (or replica) base URLs, used round-robin")
    parser.add_argument("--n", type=int, required=True, help="concurrent peers")
    parser.add_argument("--codec", default="H264", choices=["H264", "VP8"])
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--mode", default="session", choices=["session", "floor"])
    parser.add_argument("--seconds", type=float, default=10.0, help="floor: how long")
    parser.add_argument("--observation", type=float, default=12.0,
                        help="the service's sessions.observation_s (for the latency)")
    parser.add_argument("--stagger", type=float, default=0.1,
                        help="seconds between the peers' first sessions")
    parser.add_argument("--until", type=float, default=0.0,
                        help="monotonic time: start new sessions until then (soak)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--key", default=KEY)
    parser.add_argument("--secret", default=SECRET)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
