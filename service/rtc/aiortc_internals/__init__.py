"""Code that reaches into aiortc/aioice private APIs (their versions are pinned in
pyproject.toml for it): the ICE consent rule for push-only peers and faster SCTP
retransmission timers. Kept together so an aiortc upgrade has one place to check."""
