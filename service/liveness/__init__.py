"""Liveness cues and challenges: pure, synchronous state machines over face
observations (blink, mouth, turns, holds, replacement, the best frame) and the
challenge script. No I/O, no asyncio, no models of their own (the engine is handed a
landmarker and an embedder).

May import: vision (detections), media (frames), errors."""
