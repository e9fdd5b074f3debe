"""Streaming sessions: WHIP signalling, peers, frame intake, the data channel, the stream
run and the session directory.

The stream run is four small modules: runner.py (the scheduler: newest frame -> engine
-> challenge script), identity.py (identity samples embedded as pool jobs),
prejudge.py (settled best frames judged ahead of the decision) and decision.py (what
the stream left -> the structured decision of service.judging.decision -> the answer).

May import: api (signed fields, the envelope), judging, liveness, vision, media,
cluster, ops, errors. Not: config or state: the composition root (service/app.py) hands
each part its settings sections, the authenticator and the models' slot
(routes.SESSION_API)."""
