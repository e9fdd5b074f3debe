"""Streaming sessions: WHIP signalling, peers, frame intake, the data channel, the stream
run and the session directory.

May import: api (signed fields, the envelope), judging, liveness, vision, media,
cluster, ops, errors."""
