"""Fuzz the real service with >= 10,000 hostile requests and print a Markdown report.

    SERVICE_MODEL_DIR=.models .venv/bin/python bench/fuzz.py [--cases 10000] [--seed 1]

Starts `python -m service` on a free loopback port (key `fuzzkey`, a random secret,
lockout and session caps lifted so bad credentials and many sessions do not hide the
cases), sends the cases of testing/fuzzcases.py a few at a time, and reports per case
family the answers and failures (crashes, 5xx/5000, non-envelope answers, statuses
other than the expected one, echoed request bytes), latency, the process tree's RSS,
and what the service's log holds that it must not (secret, tokens, base64, tracebacks).
Exit status 1 when anything failed, so it can gate a run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from testing.fuzzcases import generate
from testing.fuzzharness import markdown, run_fuzz
from testing.fuzzmedia import load_corpus, warm_up_images

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared")) / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--max-restarts", type=int, default=30,
                        help="stop after this many crashes (each restart reloads the models)")
    parser.add_argument("--only", nargs="*", default=(), metavar="FAMILY",
                        help="run only these case families (names as in the report)")
    parser.add_argument("--examples", type=int, default=2, help="failures shown per kind")
    parser.add_argument("--log", type=Path, default=Path("/tmp/fuzz-service.log"),
                        help="where the service's own log goes")
    args = parser.parse_args()
    corpus = load_corpus(DATA)
    report = run_fuzz(generate(args.seed, args.cases, DATA, args.only), args.log,
                      concurrency=args.concurrency, timeout_s=args.timeout,
                      max_restarts=args.max_restarts,
                      warm_images=warm_up_images(corpus))
    print(f"## bench/fuzz.py: {args.cases} cases, seed {args.seed}, "
          f"concurrency {args.concurrency}\n")
    print(markdown(report, args.examples))
    bad = (report.crashes or report.failures or report.log_findings)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
