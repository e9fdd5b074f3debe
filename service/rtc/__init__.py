"""Streaming sessions: WHIP signalling, peers, frame intake, the data channel, the stream
run and the session directory.

May import: api (signed fields, the envelope), judging, liveness, vision, media,
cluster, ops, errors. The session routes get their settings, the authenticator and the
models' slot from the composition root (service/app.py: routes.SESSION_API), not from
config or state."""
