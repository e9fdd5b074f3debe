"""The token scheme of the contract, its time window, replays and failure limits."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from service.cluster.shared_state import MemoryState
from service.cluster.shared_state.memory import ReplayCache
from service.errors import BadCredentials, MalformedField, RateLimited, StaleTimestamp
from service.http.auth import Authenticator, bearer_token, make_token

NOW = 1_764_000_000.0


def auth(limit: int = 100) -> Authenticator:
    return Authenticator(keys={"k": "s"}, window_s=300, reject_replays=True,
                         max_failed=limit, failed_window_s=60, shared=MemoryState())


def test_token_is_hex_hmac_sha256_of_key_and_timestamp():
    expected = hmac.new(b"s", b"k1764000000", hashlib.sha256).hexdigest()
    assert make_token("s", "k", "1764000000") == expected


async def test_valid_token_inside_window_passes():
    ts = str(int(NOW) - 299)
    await auth().verify("c", "k", ts, make_token("s", "k", ts), "body", now=NOW)


@pytest.mark.parametrize("change", [str.upper, lambda t: f" {t}", lambda t: f"{t}\n",
                                    lambda t: f"\t{t} "])
async def test_token_must_match_exactly_lowercase_without_padding(change):
    ts = str(int(NOW))
    with pytest.raises(BadCredentials):
        await auth().verify("c", "k", ts, change(make_token("s", "k", ts)), "body", now=NOW)


@pytest.mark.parametrize("token", ["", "0" * 64, "zz", "é" * 64])
async def test_wrong_tokens_are_refused(token):
    with pytest.raises(BadCredentials):
        await auth().verify("c", "k", str(int(NOW)), token, "body", now=NOW)


@pytest.mark.parametrize("header", ["Bearer abc-DEF_123", "bearer abc-DEF_123",
                                    "BEARER abc-DEF_123"])
def test_bearer_token_is_taken_exactly(header):
    assert bearer_token(header) == "abc-DEF_123"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer  abc", "Bearer abc ",
                                    "Bearer a b", "Basic abc", "Bearerabc", "Bearer abc\x00"])
def test_malformed_bearer_headers_are_bad_credentials(header):
    with pytest.raises(BadCredentials):
        bearer_token(header)


async def test_bearer_checks_count_failures_and_honour_the_lockout():
    a = auth(limit=3)

    async def check(token: str) -> str:
        if token != "right":
            raise BadCredentials()
        return "session"

    assert await a.check_bearer("c", "Bearer right", check, now=NOW) == "session"
    for header in ("Bearer wrong", "Bearer  right", None):
        with pytest.raises(BadCredentials):
            await a.check_bearer("c", header, check, now=NOW)
    with pytest.raises(RateLimited):  # locked: even the right token waits out the window
        await a.check_bearer("c", "Bearer right", check, now=NOW + 1)
    assert await a.check_bearer("other", "Bearer right", check, now=NOW + 1) == "session"
    assert await a.check_bearer("c", "Bearer right", check, now=NOW + 61) == "session"


async def test_unknown_key_is_refused_like_a_bad_token():
    ts = str(int(NOW))
    with pytest.raises(BadCredentials):
        await auth().verify("c", "other", ts, make_token("s", "other", ts), "body", now=NOW)


@pytest.mark.parametrize("skew", [-300.5, 300.5, -1e6])
async def test_timestamps_outside_300_s_are_stale(skew):
    ts = str(NOW + skew)
    with pytest.raises(StaleTimestamp):
        await auth().verify("c", "k", ts, make_token("s", "k", ts), "body", now=NOW)


@pytest.mark.parametrize("ts", ["", "abc", "nan", "inf", "1e999"])
async def test_malformed_timestamps_name_the_field(ts):
    with pytest.raises(MalformedField, match="timestamp"):
        await auth().verify("c", "k", ts, make_token("s", "k", ts), "body", now=NOW)


async def test_identical_request_twice_is_a_replay_but_another_body_is_not():
    a = auth()
    ts = str(int(NOW))
    token = make_token("s", "k", ts)
    await a.verify("c", "k", ts, token, "body-1", now=NOW)
    await a.verify("c", "k", ts, token, "body-2", now=NOW)  # concurrent request, same second
    with pytest.raises(StaleTimestamp, match="replay"):
        await a.verify("c", "k", ts, token, "body-1", now=NOW + 1)


def test_replay_cache_forgets_expired_entries():
    cache = ReplayCache()
    assert cache.check_and_add("x", expires_at=10, now=0)
    assert not cache.check_and_add("x", expires_at=10, now=5)
    assert cache.check_and_add("x", expires_at=30, now=11)


async def test_failures_per_client_are_limited_then_forgiven():
    a = auth(limit=2)
    for _ in range(2):
        with pytest.raises(BadCredentials):
            await a.verify("c", "k", str(int(NOW)), "bad", "b", now=NOW)
    with pytest.raises(RateLimited):
        await a.verify("c", "k", str(int(NOW)), "bad", "b", now=NOW + 1)
    ts = str(int(NOW + 61))
    await a.verify("other", "k", ts, make_token("s", "k", ts), "b", now=NOW + 1)  # other client ok
    await a.verify("c", "k", ts, make_token("s", "k", ts), "b2", now=NOW + 61)  # window passed
