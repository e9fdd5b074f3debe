"""What analysing fewer frames while the challenge script waits changes (waiting_fps).

The stream runner analyses every frame at `sessions.analysis_fps` (10) but, while the
script only waits (a hold, and a later pause but its last 1.1 s:
ChallengeScript.frame_due), at `sessions.waiting_fps` (5). Simulated on the script
itself, with the clock ticking at 10 Hz as the runner's loop does and the same
simulated people and recordings as tests/test_challenges.py (testing/simulated_person.py):

- honest people, 3 random hold actions, reaction 0.3-2.2 s and release 0.3-1.6 s after
  each prompt: verdicts, every recorded time (prompt, onset, release, end), and the
  frames analysed, at both rates;
- people whose hold has one break of a given length (an eye opening, the head coming
  back) a random time into it: how long a break is tolerated;
- reels cycling through every action (the attacker's best rhythm of 24) and reels of
  the one asked action: sessions passed at both rates.

    .venv/bin/python bench/analysis_rate.py [--sessions 200]
"""

from __future__ import annotations

import argparse
import random

from service.liveness.challenges.events import Release
from service.liveness.challenges.sets import pick_challenges
from service.rtc.session import SessionSettings
from testing.simulated_person import FPS, Log, drive, frame, one_action_reel, person, reel

SLOW = SessionSettings().waiting_fps


def honest(n: int) -> None:
    same_verdict = same_times = 0
    frames = {FPS: 0, SLOW: 0}
    for seed in range(n):
        rng = random.Random(seed)
        actions = pick_challenges(3, rng)
        react, release = rng.uniform(0.3, 2.2), rng.uniform(0.3, 1.6)
        runs = {fps: drive(actions, person(react, release), seed, waiting_fps=fps)
                for fps in (FPS, SLOW)}
        for fps, (_, log) in runs.items():
            frames[fps] += log.analysed
        full, slow = runs[FPS][0], runs[SLOW][0]
        same_verdict += full.passed == slow.passed
        same_times += full.to_json() == slow.to_json()
    print(f"\nHonest people, {n} sessions of 3 hold actions\n")
    print("| | at 10 fps throughout | waiting at 5 fps |\n|---|---|---|")
    print(f"| frames analysed per session | {frames[FPS] / n:.0f} | {frames[SLOW] / n:.0f} "
          f"({100 * (1 - frames[SLOW] / frames[FPS]):.0f}% fewer) |")
    print(f"| same verdict / every time the same | | {same_verdict}/{n} / {same_times}/{n} |")


def hold_break(length_s: float, into_s: float):  # type: ignore[no-untyped-def]
    """A person who lets go for `length_s`, `into_s` after reaching each hold."""
    base = person(0.6, 0.5)

    def behaviour(t: float, log: Log):  # type: ignore[no-untyped-def]
        state, cues = base(t, log)
        prompt = log.prompt
        if prompt is not None and log.released_at(prompt[1].index) is None:
            start = prompt[0] + 0.6 + into_s
            if start <= t < start + length_s:
                return frame(t), cues
        return state, cues
    return behaviour


def breaks(n: int) -> None:
    print(f"\nA break inside each hold (0.2-0.9 s after the onset), {n} sessions per "
          "length: sessions still passing\n")
    lengths = (0.2, 0.3, 0.4, 0.5)
    print("| break | " + " | ".join(f"{x:.1f} s" for x in lengths) + " |")
    print("|---|" + "---|" * len(lengths))
    for fps in (FPS, SLOW):
        row = []
        for length in lengths:
            passed = 0
            for seed in range(n):
                rng = random.Random(seed)
                script, log = drive(pick_challenges(3, rng),
                                    hold_break(length, rng.uniform(0.2, 0.9)), seed,
                                    waiting_fps=fps)
                passed += script.passed and bool(log.of(Release))
            row.append(f"{passed}/{n}")
        print(f"| {'waiting at 5 fps' if fps == SLOW else 'at 10 fps throughout'} | "
              + " | ".join(row) + " |")


def reels(n: int) -> None:
    rhythms = [(on, gap) for on in (1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
               for gap in (0.0, 0.5, 1.0, 1.5)]
    print(f"\nRecordings ignoring the prompts, {len(rhythms)} rhythms x {n} sessions of 3 "
          "challenges: sessions passed (all rhythms / the best rhythm)\n")
    print("| recording | at 10 fps throughout | waiting at 5 fps |\n|---|---|---|")
    for name in ("every action in turn", "the first asked action only"):
        cells = []
        for fps in (FPS, SLOW):
            total, best = 0, 0
            for on, gap in rhythms:
                rng = random.Random(hash((on, gap)) & 0xFFFF)
                passed = 0
                for seed in range(n):
                    actions = pick_challenges(3, rng)
                    phase = rng.uniform(0, 20)
                    behaviour = reel(on, gap, phase) if name.startswith("every") else \
                        one_action_reel(actions[0], on, gap, phase)
                    script, _ = drive(actions, behaviour, seed, waiting_fps=fps)
                    passed += script.passed
                total += passed
                best = max(best, passed)
            cells.append(f"{total}/{len(rhythms) * n} / {best}/{n}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    args = parser.parse_args()
    honest(args.sessions * 5)
    breaks(args.sessions)
    reels(args.sessions)


if __name__ == "__main__":
    main()
