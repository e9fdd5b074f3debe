"""Streaming video verification: liveness and face comparison over WebRTC and HTTP.

Read top-down, the packages are the layers of the service (pyproject.toml
[tool.importlinter] keeps them; README "Layout" draws them). A module imports only from
layers below its own:

    __main__, launch       processes: one replica, or one per core (composition root)
    app, state, config     wiring: builds each component and hands it its settings
    http/                  the HTTP server: middleware, authentication, errors, pages
    rtc/                   streaming sessions: WHIP, peers, data channel, the stream run
    api/                   the vendor contract: signed form fields, /api/verify, envelope
    judging/               evidence -> decision: face comparison, silent and video liveness
    liveness/              cues and challenges: state machines over face observations
    vision/                models and the pool that runs them
    media/                 decoding client bytes (sandboxed) into images and frames
    cluster/               what replicas share: replay cache, quotas, sessions (memory/Redis)
    ops/                   metrics, logs, webhooks, memory hygiene
    errors                 the vendor status codes every layer raises
"""
