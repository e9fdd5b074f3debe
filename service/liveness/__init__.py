"""Liveness cues: pure, synchronous state machines over face observations."""
