"""Attacks and honest users against the real service's streaming sessions (issue 11).

The scenarios (testing/attack_scenarios.py: replays, loops, action reels, photos,
splices, FFmpeg pushes, simulated honest people) run against services started as their
own processes; each session is one attempt, and an attempt passes when the result says
`Living body`. Per scenario: sessions, passes, APCER (attacks) or BPCER (honest users)
with a two-sided 95% Clopper-Pearson interval, and the median session time from the
client's first frame to the result.

Two services run: one picking from all four hold actions (the default) and one that
leaves the head turns out (SERVICE_SESSIONS__CHALLENGES__ACTIONS=eyes_closed,mouth_open,
as a kiosk may), because the simulated people cannot turn. Attack sessions alternate
between the two; honest sessions use the second. Each attack session takes the next of
the challenge sets (ATTACK_SETS), so short runs still cover every set.

    .venv/bin/python bench/attack_sessions.py [--sessions-per-scenario 30] [--honest 100]
        [--concurrency 3] [--only loop_blink honest ...] [--sets default eyes_closed ...]
        [--seed 0] [--url URL --kiosk-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from testing.attack_scenarios import (
    ATTACK_SETS,
    HONEST_SETS,
    KIOSK_ACTIONS,
    POOLS,
    SCENARIOS,
    Context,
    Outcome,
    Scenario,
    ffmpeg_exe,
    honest,
)
from testing.service_process import running_service

# --- the statistics ---------------------------------------------------------------------


def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * math.log(p) + (n - i) * math.log1p(-p)) for i in range(k + 1))


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided interval for k successes in n trials (bisection on the binomial
    CDF: no scipy needed)."""
    def solve(target: Callable[[float], bool]) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if target(mid) else (lo, mid)
        return (lo + hi) / 2
    lower = 0.0 if k == 0 else solve(lambda p: 1 - _binom_cdf(k - 1, n, p) < alpha / 2)
    upper = 1.0 if k == n else solve(lambda p: _binom_cdf(k, n, p) > alpha / 2)
    return lower, upper


@dataclass
class Tally:
    scenario: Scenario
    outcomes: list[tuple[str, str | None, Outcome]]  # (pool, challenge set, outcome)

    def row(self) -> str:
        n = len(self.outcomes)
        passed = sum(o.passed for _, _, o in self.outcomes)
        errors = passed if self.scenario.attack else n - passed
        lo, hi = clopper_pearson(errors, n) if n else (0.0, 1.0)
        times = [o.seconds for _, _, o in self.outcomes if o.seconds is not None]
        median = f"{statistics.median(times):.1f} s" if times else "-"
        rate = "APCER" if self.scenario.attack else "BPCER"
        share = errors / n if n else 0.0
        return (f"| {self.scenario.name} | {n} | {passed} | {rate} {100 * share:.1f}% "
                f"[{100 * lo:.1f}, {100 * hi:.1f}] | {median} |")


async def run_all(args: argparse.Namespace, url: str, kiosk_url: str) -> list[Tally]:
    wanted = [s for s in SCENARIOS if not args.only or s.name in args.only]
    exe = ffmpeg_exe() if any(s.needs_ffmpeg for s in wanted) else None
    jobs: list[tuple[Tally, int, str | None, str]] = []
    tallies = []
    for k, scenario in enumerate(wanted):
        if scenario.needs_ffmpeg and exe is None:
            print(f"skipped {scenario.name}: no FFmpeg with the WHIP muxer "
                  "(pip install imageio-ffmpeg)")
            continue
        tally = Tally(scenario, [])
        tallies.append(tally)
        count = max(args.sessions_per_scenario if scenario.attack else args.honest,
                    scenario.inputs)
        sets = scenario.sets
        if args.sets and scenario.attack:
            sets = tuple(None if c == "default" else c for c in args.sets)
        # each scenario starts at another set, so short runs still cover every set;
        # attacks alternate between the two services, honest people use the kiosk one
        jobs += [(tally, i, sets[(i + k) % len(sets)],
                  POOLS[(i // len(sets)) % 2] if scenario.attack else scenario.pool)
                 for i in range(count)]
    random.Random(args.seed).shuffle(jobs)  # scenarios interleaved: same load for each
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    done = 0

    async def worker(ctx: Context) -> None:
        nonlocal done
        while not queue.empty():
            tally, index, challenges, pool = queue.get_nowait()
            outcome = await tally.scenario.run(dataclasses.replace(ctx, pool=pool), index,
                                               challenges)
            tally.outcomes.append((pool, challenges, outcome))
            done += 1
            if outcome.passed == tally.scenario.attack or args.verbose:
                print(f"[{done}/{len(jobs)}] {tally.scenario.name} #{index} "
                      f"{challenges or 'default'} ({pool}): "
                      f"{'PASSED' if outcome.passed else 'failed'} ({outcome.reason})",
                      flush=True)

    async with aiohttp.ClientSession() as http:
        ctx = Context(url, http, args.seed, kiosk_url=kiosk_url)
        await asyncio.gather(*(worker(ctx) for _ in range(args.concurrency)))
    return tallies


def report(tallies: list[Tally]) -> None:
    print("\n| scenario | sessions | passed | error rate [95% CI] | median first frame -> "
          "result |\n|---|---|---|---|---|")
    for tally in tallies:
        print(tally.row())
    attacks = [o for t in tallies if t.scenario.attack for o in t.outcomes]
    if attacks:
        total = Tally(Scenario("all attacks", True, honest, ()), attacks)
        print(total.row())
    print("\n| actions the service picks | challenge set asked | attack sessions | passed | "
          "honest sessions | passed | honest median first frame -> result |"
          "\n|---|---|---|---|---|---|---|")
    for pool in POOLS:
        for challenges in dict.fromkeys(ATTACK_SETS + HONEST_SETS):
            a = [o for t in tallies if t.scenario.attack for p, c, o in t.outcomes
                 if (p, c) == (pool, challenges)]
            h = [o for t in tallies if not t.scenario.attack for p, c, o in t.outcomes
                 if (p, c) == (pool, challenges)]
            times = [o.seconds for o in h if o.seconds is not None]
            median = f"{statistics.median(times):.1f} s" if times else "-"
            if a or h:
                print(f"| {pool} | {challenges or 'default (3 random)'} | {len(a)} | "
                      f"{sum(o.passed for o in a)} | {len(h)} | "
                      f"{sum(o.passed for o in h)} | {median} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions-per-scenario", type=int, default=30)
    parser.add_argument("--honest", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--sets", nargs="*", help="the attacks' challenge sets instead "
                        "of ATTACK_SETS (`default`: no challenges field)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="a running service (its sessions limits must allow "
                        "the concurrency and the session rate)")
    parser.add_argument("--kiosk-url", help="a running service configured with "
                        f"SERVICE_SESSIONS__CHALLENGES__ACTIONS={','.join(KIOSK_ACTIONS)}")
    parser.add_argument("--verbose", action="store_true", help="print every session")
    args = parser.parse_args()
    started = time.monotonic()
    if args.url and args.kiosk_url:
        tallies = asyncio.run(run_all(args, args.url, args.kiosk_url))
    else:
        env = {"SERVICE_SESSIONS__MAX_ACTIVE": str(args.concurrency + 2),
               "SERVICE_SESSIONS__PER_KEY_PER_MINUTE": "100000"}
        kiosk = {**env, "SERVICE_SESSIONS__CHALLENGES__ACTIONS": ",".join(KIOSK_ACTIONS)}
        with running_service(env) as url, running_service(kiosk) as kiosk_url:
            tallies = asyncio.run(run_all(args, url, kiosk_url))
    report(tallies)
    print(f"\n{sum(len(t.outcomes) for t in tallies)} sessions in "
          f"{(time.monotonic() - started) / 60:.1f} min, concurrency {args.concurrency}, "
          f"seed {args.seed}")


if __name__ == "__main__":
    main()
