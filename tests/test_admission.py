"""Admission to the model pool: overload answers 4290 at once instead of queueing."""

from __future__ import annotations

import asyncio

import pytest
from conftest import data_bytes, make_config, start_server, status_of

from service.errors import RateLimited
from service.vision.admission import Admission, AdmissionSettings
from testing.client import VerifyClient

CLIP = "blink/zju/000001M_FBN.mp4"


def test_jobs_are_admitted_while_the_expected_wait_is_under_the_target():
    admission = Admission(workers=2, params=AdmissionSettings(target_wait_s=3.0, max_pending=100))
    tickets = [admission.admit("clip", first_guess_s=2.0) for _ in range(4)]  # 0, 1, 2, 3 s
    with pytest.raises(RateLimited):
        admission.admit("clip", first_guess_s=2.0)  # would wait 4 s
    tickets[0].start()  # workers take two: 4 s of queued work left over 2 workers
    tickets[1].start()
    admission.admit("clip", first_guess_s=2.0)


def test_the_queue_length_follows_what_each_kind_of_job_costs():
    admission = Admission(workers=1, params=AdmissionSettings(target_wait_s=1.0, max_pending=100))
    for kind, seconds in (("frame", 0.01), ("clip", 2.0)):
        ticket = admission.admit(kind, first_guess_s=0.05)
        ticket.start()
        ticket.finish(seconds)
    admission.admit("clip", first_guess_s=0.05)  # 2 s of work queued now
    with pytest.raises(RateLimited):
        admission.admit("frame", first_guess_s=0.05)


def test_a_free_worker_takes_a_job_whatever_its_estimate():
    """After one faceless 4000 px photo took 18 s, the next comparison (two jobs at once)
    on an idle pool must still run, not be refused as if 18 s were queued."""
    admission = Admission(workers=2, params=AdmissionSettings(target_wait_s=3.0, max_pending=100))
    slow = admission.admit("prepare_face", 0.05)
    slow.start()
    slow.finish(18.0)
    admission.admit("prepare_face", 0.05)
    admission.admit("prepare_face", 0.05)  # the second worker is free too
    with pytest.raises(RateLimited):  # now 36 s are queued for two busy workers
        admission.admit("prepare_face", 0.05)


def test_one_slow_job_does_not_make_its_kind_look_slow():
    admission = Admission(workers=1, params=AdmissionSettings(target_wait_s=1.0, max_pending=100))
    for seconds in (0.06, 0.05, 0.07, 18.0):
        ticket = admission.admit("prepare_face", 0.05)
        ticket.start()
        ticket.finish(seconds)
    assert admission.estimate_s("prepare_face", 0.05) < 0.1
    for _ in range(10):  # ten comparisons queue behind a busy worker: ~0.6 s of work
        admission.admit("prepare_face", 0.05)


def test_required_jobs_pass_and_abandoned_jobs_give_their_place_back():
    admission = Admission(workers=1, params=AdmissionSettings(target_wait_s=0.5, max_pending=2))
    first = admission.admit("decide", 1.0)
    with pytest.raises(RateLimited):
        admission.admit("frame", 0.01)
    second = admission.admit("decide", 1.0, required=True)
    first.finish()  # the caller went away before a worker started it
    second.finish()
    assert admission.pending == 0 and admission.expected_wait_s() == 0.0
    admission.admit("frame", 0.01)


def test_the_hard_cap_bounds_jobs_in_flight():
    admission = Admission(workers=4, params=AdmissionSettings(target_wait_s=100.0, max_pending=3))
    for _ in range(3):
        admission.admit("image", 0.01).start()
    with pytest.raises(RateLimited):
        admission.admit("image", 0.01)


async def test_concurrent_uploads_beyond_the_pool_are_refused_with_4290(http):
    """One worker, a 1 s target wait: of ten clips sent at once a few are analysed and
    the rest answer 4290 "busy" instead of waiting their turn."""
    server = await start_server(make_config(workers=1, admission__target_wait_s=1.0))
    try:
        client = VerifyClient(str(server.make_url("")).rstrip("/"), "test-key",
                              "test-secret", http)
        clip = data_bytes(CLIP)
        answers = await asyncio.gather(*(client.verify(3035, multipart=True, file=clip)
                                         for _ in range(10)))
        statuses = [status_of(body) for _, body in answers]
        assert statuses.count("2000") >= 1
        assert statuses.count("4290") >= 5
        assert set(statuses) <= {"2000", "4290"}
        assert all(http_status == 429 for http_status, body in answers
                   if status_of(body) == "4290")
    finally:
        await server.close()
