"""Evidence -> decision, the use cases of the vendor API: face comparison (typeId 21),
silent liveness on one image and video liveness on a clip (typeId 3035), and
decision.py, the one place a verdict is made, for uploads and streaming sessions alike:
a structured `Decision` (reasons as codes and words). The vendor envelope is built from
it at the edge (service.api.envelope), never here.

Each function takes its own settings section, never the root Config. May import:
liveness, vision, media, ops, errors. Not: api, rtc, config."""
