"""Fuzz test: a few thousand hostile requests against the real service process.

The cases (testing/fuzzcases.py, fixed seed) cover every endpoint: raw malformed HTTP,
forms, multipart, JSON, base64, mutated and header-patched media (JPEG, PNG, BMP, TIFF,
WebP, GIF, JPEG 2000, MP4, AVI, MPEG...), lying EXIF, ICC and XMP metadata, credentials, session creation, WHIP offers,
trickle PATCH, DELETE and result polling. The harness (testing/fuzzharness.py) runs
`python -m service` in its own process so a native crash is seen, not suffered.

FUZZ_CASES sets the number of cases, shared among the families by weight, every family
at least MIN_PER_FAMILY times (testing.fuzzcases.family_quotas). One run feeds every
test below, so each property fails on its own with the Markdown report of the run
(which case, which answer). No timing is asserted (a shared machine); the latencies
are in the report. The longer run is `bench/fuzz.py` (>= 10,000 cases).
"""

from __future__ import annotations

import os

import pytest
from conftest import DATA

from testing.fuzzcases import FAMILIES, generate
from testing.fuzzharness import Report, markdown, run_fuzz
from testing.fuzzmedia import load_corpus, warm_up_images

CASES = int(os.environ.get("FUZZ_CASES", "1000"))
# Every family at least this often, whatever its weight: by weight alone the rarest
# (video headers, 2 of 114) would get 18 of 1,000.
MIN_PER_FAMILY = 25
# The run is the first test's set-up: 2,500 requests took 508 s on the 2-core machine
# at a load average of 30 (about 60 s when quiet), past the suite's 600 s per test;
# 1,000 took 43 s at a load average of 5 (issue 20).
pytestmark = pytest.mark.timeout(1800)
SEED = 10
# What the run may leave resident beyond the service it started with (warmed up by a
# face photo and a 4000 px photo with no face, so the detector's buffers for its largest
# pass are in the baseline): the allocator keeps some freed memory, but no request's
# buffers may stay.
RSS_GROWTH_MB = 512


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    corpus = load_corpus(DATA)
    log = tmp_path_factory.mktemp("fuzz") / "service.log"
    rep = run_fuzz(generate(SEED, CASES, DATA, min_per_family=MIN_PER_FAMILY), log,
                   concurrency=4, timeout_s=60.0,
                   max_restarts=5, warm_images=warm_up_images(corpus))
    print(markdown(rep))
    return rep


def _failures(report: Report, *prefixes: str) -> list[str]:
    return [f"{f.family}: {f.problem} -> {f.answer}: {f.description[:120]}"
            for f in report.failures if f.problem.startswith(prefixes)]


def test_every_family_ran_its_minimum(report: Report) -> None:
    short = {f.__name__: report.by_family[f.__name__] for f, _ in FAMILIES
             if report.by_family[f.__name__] < MIN_PER_FAMILY}
    assert not short, f"families below {MIN_PER_FAMILY} cases: {short}"
    assert report.cases >= CASES


def test_the_service_never_dies(report: Report) -> None:
    assert not report.crashes, markdown(report)


def test_no_internal_error(report: Report) -> None:
    bad = _failures(report, "HTTP 5xx", "status 5000")
    assert not bad, f"{len(bad)} answers 5xx/5000, e.g. {bad[:10]}\n\n{markdown(report)}"


def test_every_answer_is_the_envelope(report: Report) -> None:
    bad = _failures(report, "non-envelope")
    assert not bad, f"{len(bad)} non-envelope answers, e.g. {bad[:10]}\n\n{markdown(report)}"


def test_every_request_is_answered(report: Report) -> None:
    bad = _failures(report, "no answer", "closed", "connection", "unparseable",
                    "session setup")
    assert not bad, f"{len(bad)} requests unanswered, e.g. {bad[:10]}\n\n{markdown(report)}"


def test_statuses_named_by_the_cases(report: Report) -> None:
    """JPEG 2000 header attacks answer 4002/4013; altered tokens 4010; stale or
    replayed requests 4011."""
    bad = [f for f in _failures(report, "status ") if "5000" not in f]
    assert not bad, f"{len(bad)} unexpected statuses, e.g. {bad[:10]}\n\n{markdown(report)}"


def test_nothing_echoed(report: Report) -> None:
    bad = _failures(report, "request bytes")
    assert not bad, f"{len(bad)} answers echo the request, e.g. {bad[:10]}"


def test_memory_comes_back(report: Report) -> None:
    assert report.rss_end_mb <= report.rss_start_mb + RSS_GROWTH_MB, markdown(report)


def test_log_holds_no_secret_token_body_or_traceback(report: Report) -> None:
    assert not report.log_findings, markdown(report)
