"""Evidence -> decision, the use cases of the vendor API: face comparison (typeId 21),
silent liveness on one image and video liveness on a clip (typeId 3035), and the video
decision that uploads and streaming sessions share.

Each function takes its own settings section, never the root Config. May import:
liveness, vision, media, ops, errors."""
