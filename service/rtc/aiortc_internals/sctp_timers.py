"""Data-channel retransmission timers short enough for prompts on a lossy link.

aiortc's SCTP (the data channel) keeps RFC 4960's conservative timers: a lost message
is sent again 3 s later until a round trip has been measured, and never sooner than
1 s after. A prompt or a release is a single small message (no later data to trigger a
fast retransmit), so on a link losing 3% of packets about one prompt in 30 reached the
person 1-3 s late, at the end of or after its reaction window (measured with
testing/netimpair.py: a prompt delivered with the challenge's failure). Browsers' SCTP
stacks retransmit far sooner (Chrome's starts at 0.5 s). The service uses 0.5 s before
the first round trip and a 0.3 s floor after it; retransmissions remain bounded by
SCTP's own limits, and a duplicate is discarded by the receiver.

The timers are module constants of aiortc.rtcsctptransport (read each time a timer is
set), so this applies to every peer connection of the process: only the service's
own, in production (aiortc is pinned in pyproject.toml).
"""

from __future__ import annotations

from aiortc import rtcsctptransport

RTO_INITIAL_S = 0.5
RTO_MIN_S = 0.3


def use_prompt_timers() -> None:
    rtcsctptransport.SCTP_RTO_INITIAL = RTO_INITIAL_S  # type: ignore[assignment]
    rtcsctptransport.SCTP_RTO_MIN = RTO_MIN_S  # type: ignore[assignment]
