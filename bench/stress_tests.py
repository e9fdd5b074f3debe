"""Run test files many times while every core is busy, and count what fails.

    SERVICE_MODEL_DIR=.models .venv/bin/python bench/stress_tests.py \\
        tests/test_turn.py tests/test_kiosk.py --runs 10 [--busy 2] [--log-dir DIR]

Why: a test that waits for a fixed time or a lucky ordering passes on a quiet laptop
and fails on a shared CI runner. The tests that start real processes and real-time
sessions (replicas, launch, kiosk, web page, attack sessions, TURN, logs) are where
that hides, so they are run here under the worst ordinary condition: one busy-loop
process per core (`--busy`, default os.cpu_count()), started before the first run and
killed when the script ends, however it ends (an exception, Ctrl-C or SIGTERM).

The files are run in turns (file 1, file 2, ..., file 1, ...), each run a fresh
`python -m pytest -q` process, so a slow minute of the machine spreads over all files.
A run that fails keeps its output in --log-dir. Prints a Markdown table: per file the
runs, passes, failures and the wall time of a run (median and max); exit status 1 if
any run failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY_LOOP = "while True:\n    pass\n"


@dataclass
class FileRuns:
    path: str
    passed: int = 0
    failed: list[int] = field(default_factory=list)  # run numbers
    wall_s: list[float] = field(default_factory=list)
    first_failure: str = ""


def start_busy(count: int) -> list[subprocess.Popen[bytes]]:
    """`count` processes spinning on a core each (plain Python: no package needed)."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(count)]


def stop_busy(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait()


def run_once(path: str, timeout_s: float, log: Path) -> tuple[bool, float, str]:
    """One pytest process on `path`: (passed, wall seconds, its summary line)."""
    start = time.monotonic()
    # this checkout's code first, whatever the virtualenv's editable install points at
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 path], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            code = -1
        except BaseException:  # Ctrl-C or SIGTERM: the run is not left behind
            _kill_tree(proc)
            raise
    wall = time.monotonic() - start
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    if code == -1:
        summary = f"killed after {timeout_s:g} s; {summary}"
    return code == 0, wall, summary


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """The pytest process and what it started (its own session: servers, browsers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def markdown(results: list[FileRuns], busy: int, runs: int) -> str:
    rows = [f"Each file run {runs} times, one at a time, with {busy} busy-loop processes "
            f"on {os.cpu_count()} cores.\n",
            "| test file | runs | passed | failed | wall per run, median / max |",
            "|---|---|---|---|---|"]
    for r in results:
        total = r.passed + len(r.failed)
        wall = (f"{statistics.median(r.wall_s):.0f} s / {max(r.wall_s):.0f} s"
                if r.wall_s else "-")
        rows.append(f"| `{r.path}` | {total} | {r.passed} | {len(r.failed)} | {wall} |")
    failures = [f"- `{r.path}` runs {r.failed}: {r.first_failure}"
                for r in results if r.failed]
    return "\n".join(rows + ([""] + failures if failures else []))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="test files, relative to the repository")
    parser.add_argument("--runs", type=int, default=10, help="runs of each file")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                        help="busy-loop processes (default: one per core)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds one pytest run may take before it is killed")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/stress-tests"),
                        help="where each run's output is kept")
    args = parser.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    results = [FileRuns(path) for path in args.files]
    # SIGTERM ends the script like Ctrl-C, through the finally below
    signal.signal(signal.SIGTERM, _interrupt)
    busy = start_busy(args.busy)
    try:
        for run in range(1, args.runs + 1):
            for result in results:
                log = args.log_dir / f"{Path(result.path).stem}.{run}.log"
                ok, wall, summary = run_once(result.path, args.timeout, log)
                result.wall_s.append(wall)
                if ok:
                    result.passed += 1
                    log.unlink()
                else:
                    result.failed.append(run)
                    result.first_failure = result.first_failure or f"{summary} ({log})"
                print(f"run {run} {result.path}: {'pass' if ok else 'FAIL'} "
                      f"{wall:.0f} s {summary}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted: the table counts the runs finished so far", file=sys.stderr)
    finally:
        stop_busy(busy)
    print(markdown(results, args.busy, args.runs))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
