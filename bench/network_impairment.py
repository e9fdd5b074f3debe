"""Honest people and replay/reel attacks over impaired networks (issue 21).

Each session is a real aiortc client (testing/rtc_client.py) whose ICE sockets go through
a user-space impairment (testing/netimpair.py: RTP, RTCP, the data channel and ICE are all
impaired, both ways) into the real service started as its own process (the challenge
actions left without head turns, as for the attack bench's simulated people). The
people and attacks are the attack bench's (testing/attack_scenarios.py):

  honest        a simulated person following the prompts (hold-and-release sets,
                reaction times drawn 0.3-1.2 s as there)
  loop_blink    a ZJU blink clip looped, ignoring every prompt
  action_reel   one person's real frames cycling through eyes shut / mouth wide open

Cells (both directions impaired unless said):
  clear                 no impairment
  loss_N                N% random loss (1, 3, 5, 10)
  jitter_N              0-N ms of extra delay per packet (50, 150): packets reorder
  loss3_jitter50        the issue's first target
  loss5_jitter150       the issue's second target
  uplink_300k           0.5 s after the first prompt reached the client, its uplink
                        falls to 300 kbit/s (token bucket, 0.4 s queue) for 5 s
  blackout_2s           0.5 s after the first prompt, nothing passes either way for 2 s

A session passes when the result says `Living body`; the reasons of the others are
`network` (status 4007), the challenge that failed and why, or the decision's reasons.
Session time: the client's first frame to the result (read from the data channel or,
if that message is lost, the result URL). Results are read over plain HTTP, which is
not impaired.

    .venv/bin/python bench/network_impairment.py [--honest 20] [--attacks 10]
        [--cells clear loss_3 ...] [--concurrency 2] [--seed 0] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from testing.attack_scenarios import (
    ACTOR_FPS,
    BLINK_CLIPS,
    FPS,
    KIOSK_ACTIONS,
    REEL_PERSON,
    actor,
    clip,
    judge,
    pick,
    reel_frames,
)
from testing.netimpair import Conditions, Link
from testing.rtc_client import ActingTrack, ClipTrack, WhipClient, create_session
from testing.service_process import KEY, SECRET, running_service

SESSION_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Cell:
    name: str
    conditions: Conditions = Conditions()
    # applied to the link 0.5 s after the first prompt reached the client
    event: Callable[[Link], None] | None = None


def _uplink_drop(link: Link) -> None:
    before = link.up.conditions
    link.up.conditions = Conditions(rate_bps=300_000, bucket_bytes=8_000, queue_s=0.4)
    asyncio.get_running_loop().call_later(5.0, lambda: setattr(link.up, "conditions",
                                                               before))


def _blackout(link: Link) -> None:
    link.for_seconds(2.0, blackout=True)


CELLS = [Cell("clear")]
CELLS += [Cell(f"loss_{p}", Conditions(loss=p / 100)) for p in (1, 3, 5, 10)]
CELLS += [Cell(f"jitter_{j}", Conditions(jitter_s=j / 1000)) for j in (50, 150)]
CELLS += [Cell("loss3_jitter50", Conditions(loss=0.03, jitter_s=0.05)),
          Cell("loss5_jitter150", Conditions(loss=0.05, jitter_s=0.15)),
          Cell("uplink_300k", event=_uplink_drop),
          Cell("blackout_2s", event=_blackout)]


@dataclass(frozen=True)
class Outcome:
    passed: bool
    seconds: float | None
    reason: str
    loss: float  # measured on the uplink
    note: str = ""  # the network detail the service measured


def _reason(payload: dict) -> str:
    status = payload.get("messageString", {}).get("status")
    if status == "4007":
        return "network"
    outcome = judge(payload, None, 0.0)
    failed = [c for c in payload.get("detail", {}).get("challenges", []) if c.get("failed")]
    if failed:  # the failed challenge's reason names it best
        return f"challenge {failed[0]['failed']}"
    return outcome.reason


async def _result(client: WhipClient) -> dict:
    """The data channel's result message, or the result URL's (whichever first)."""
    assert client.result is not None
    poll = asyncio.create_task(client.poll_result(timeout=SESSION_TIMEOUT_S))
    done, _ = await asyncio.wait([client.result, poll], timeout=SESSION_TIMEOUT_S,
                                 return_when=asyncio.FIRST_COMPLETED)
    if client.result in done:
        poll.cancel()
        return client.result.result()
    status, payload = await poll
    if status == 202:
        raise RuntimeError("session not decided in time")
    return payload


async def run_session(http: aiohttp.ClientSession, url: str, cell: Cell, kind: str,
                      index: int, seed: int) -> Outcome:
    status, session = await create_session(http, url, KEY, SECRET)
    if status != 201:
        raise RuntimeError(f"session not created: {status} {session}")
    track: ClipTrack | ActingTrack
    if kind == "honest":
        track = actor(session["challenges"], seed * 100_003 + index)
    elif kind == "loop_blink":
        path = pick(BLINK_CLIPS, index)
        track = ClipTrack(clip(path), fps=FPS[path])
    else:  # action_reel
        order = ("eyes_closed", "mouth_open") if index % 2 else ("mouth_open", "eyes_closed")
        track = ClipTrack(reel_frames(REEL_PERSON, order, seed + index), fps=ACTOR_FPS)
    link = Link.seeded(seed * 1000 + index, cell.conditions)
    client = WhipClient(session, http, link=link)
    if isinstance(track, ActingTrack):
        client.listeners.append(track.on_message)
    if cell.event is not None:
        fired = False

        def on_message(message: dict) -> None:
            nonlocal fired
            if message.get("type") == "challenge" and not fired:
                fired = True
                asyncio.get_running_loop().call_later(0.5, cell.event, link)
        client.listeners.append(on_message)
    if await client.connect(track) != 201:
        raise RuntimeError("WHIP offer refused")
    try:
        payload = await _result(client)
        ended = time.monotonic()
    finally:
        await client.hang_up()
    outcome = judge(payload, track._start, ended)
    passed = outcome.passed
    net = payload.get("detail", {}).get("network", {})
    note = " ".join(f"{k}={net[k]}" for k in ("frozen_s", "stalls", "restarts", "loss",
                                               "keyframes_asked") if k in net)
    return Outcome(passed, outcome.seconds, "-" if passed else _reason(payload),
                   link.up.stats.loss_fraction, note)


@dataclass
class Tally:
    cell: str
    kind: str
    outcomes: list[Outcome] = field(default_factory=list)

    def row(self) -> str:
        n = len(self.outcomes)
        passed = sum(o.passed for o in self.outcomes)
        times = [o.seconds for o in self.outcomes if o.seconds is not None and o.passed]
        median = f"{statistics.median(times):.1f} s" if times else "-"
        reasons = Counter(o.reason for o in self.outcomes if not o.passed)
        text = ", ".join(f"{r} x{c}" for r, c in reasons.most_common()) or "-"
        loss = statistics.mean(o.loss for o in self.outcomes) if n else 0.0
        return (f"| {self.cell} | {self.kind} | {n} | {passed} ({100 * passed / max(n, 1):.0f}%)"
                f" | {median} | {100 * loss:.1f}% | {text} |")


async def run_all(args: argparse.Namespace, url: str) -> list[Tally]:
    cells = [c for c in CELLS if not args.cells or c.name in args.cells]
    tallies: list[Tally] = []
    jobs: list[tuple[Tally, Cell, str, int]] = []
    for cell in cells:
        for kind, count in (("honest", args.honest), ("loop_blink", args.attacks),
                            ("action_reel", args.attacks)):
            if count:
                tally = Tally(cell.name, kind)
                tallies.append(tally)
                jobs += [(tally, cell, kind, i) for i in range(count)]
    random.Random(args.seed).shuffle(jobs)  # cells interleaved: the same load for each
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    done = 0

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            tally, cell, kind, index = queue.get_nowait()
            try:
                outcome = await run_session(http, url, cell, kind, index, args.seed)
            except Exception as exc:  # counted, not hidden: a session that broke
                outcome = Outcome(False, None, f"bench error {type(exc).__name__}", 0.0)
            tally.outcomes.append(outcome)
            done += 1
            if args.verbose or outcome.passed == (kind != "honest"):
                print(f"[{done}/{len(jobs)}] {cell.name} {kind} #{index}: "
                      f"{'PASSED' if outcome.passed else 'failed'} ({outcome.reason}) {outcome.note}",
                      flush=True)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(args.concurrency)))
    return tallies


def report(tallies: list[Tally]) -> None:
    print("\n| network | who | sessions | passed | median time (passed) | uplink loss "
          "measured | failure reasons |\n|---|---|---|---|---|---|---|")
    for tally in tallies:
        print(tally.row())


def udp_receive_buffer_drops() -> int | None:
    """Datagrams this machine's kernel dropped for full socket buffers (Linux
    /proc/net/snmp RcvbufErrors, all processes): on a busy machine the event loops read
    their sockets late, and that loss is not the impairment's."""
    try:
        lines = [line.split() for line in open("/proc/net/snmp") if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--honest", type=int, default=20, help="honest sessions per cell")
    parser.add_argument("--attacks", type=int, default=10,
                        help="sessions per attack per cell (loop_blink, action_reel)")
    parser.add_argument("--cells", nargs="*", choices=[c.name for c in CELLS])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="a running service configured with "
                        f"SERVICE_SESSIONS__CHALLENGES__ACTIONS={','.join(KIOSK_ACTIONS)}")
    parser.add_argument("--verbose", action="store_true", help="print every session")
    args = parser.parse_args()
    started = time.monotonic()
    drops = udp_receive_buffer_drops()
    if args.url:
        tallies = asyncio.run(run_all(args, args.url))
    else:
        env = {"SERVICE_SESSIONS__MAX_ACTIVE": str(args.concurrency + 2),
               "SERVICE_SESSIONS__PER_KEY_PER_MINUTE": "100000",
               "SERVICE_SESSIONS__CHALLENGES__ACTIONS": ",".join(KIOSK_ACTIONS)}
        with running_service(env) as url:
            tallies = asyncio.run(run_all(args, url))
    report(tallies)
    print(f"\n{sum(len(t.outcomes) for t in tallies)} sessions in "
          f"{(time.monotonic() - started) / 60:.1f} min, concurrency {args.concurrency}, "
          f"seed {args.seed}")
    after = udp_receive_buffer_drops()
    if drops is not None and after is not None:
        print(f"UDP datagrams the kernel dropped for full receive buffers meanwhile (all "
              f"processes of the machine): {after - drops}")


if __name__ == "__main__":
    main()
