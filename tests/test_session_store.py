"""Session bookkeeping: single-use tokens, limits, expiry and forgetting (spec section 2)."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import BadCredentials, RateLimited, SessionExpired, SessionNotFound
from service.rtc.session import IllegalTransition, SessionState, SessionStore


def store(**kw) -> SessionStore:
    defaults = {"max_active": 2, "result_retention_s": 30.0}
    return SessionStore(**{**defaults, **kw})


def test_token_opens_only_its_own_session():
    s = store()
    a, token_a = s.create("k", ["blink"], 120.0, None, None, now=0.0)
    b, token_b = s.create("k", ["mouth"], 120.0, None, None, now=0.0)
    assert s.get(a.id, token_a, now=1.0) is a
    with pytest.raises(BadCredentials):
        s.get(a.id, token_b, now=1.0)
    with pytest.raises(SessionNotFound):
        s.get("no-such-session", token_a, now=1.0)


def test_busy_past_the_concurrent_session_limit():
    s = store(max_active=1)
    s.create("k", [], 120.0, None, None, now=0.0)
    with pytest.raises(RateLimited, match="busy"):
        s.create("other", [], 120.0, None, None, now=0.0)


def test_expired_session_is_refused_and_listed_for_cleanup():
    s = store()
    session, token = s.create("k", [], 10.0, np.ones(128, np.float32), {}, now=0.0)
    with pytest.raises(SessionExpired):
        s.get(session.id, token, now=10.0)
    expiring, forget = s.due(now=10.0)
    assert expiring == [session] and forget == []


def test_decided_session_is_forgotten_after_retention():
    s = store(result_retention_s=30.0)
    session, _ = s.create("k", [], 10.0, np.ones(128, np.float32), {}, now=0.0)
    session.advance(SessionState.CONNECTED)
    session.advance(SessionState.DECIDING)
    session.advance(SessionState.DECIDED, now=5.0)  # drops the biometrics
    assert session.portrait is None
    assert s.due(now=39.0)[1] == []
    assert s.due(now=40.0)[1] == [session.id]


def test_session_state_changes_only_along_its_transitions():
    s = store()
    session, _ = s.create("k", [], 10.0, np.ones(128, np.float32), {}, now=0.0)
    with pytest.raises(IllegalTransition):
        session.advance(SessionState.DECIDED)  # never connected: nothing to decide
    session.advance(SessionState.ENDED, now=1.0)  # DELETE before any media
    assert not session.active and session.portrait is None and session.outbox.closed
    with pytest.raises(IllegalTransition):
        session.advance(SessionState.CONNECTED)  # a final state is final
