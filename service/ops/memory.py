"""Keep the process's memory flat under many short streaming sessions.

Every session builds and tears down its own MediaPipe graphs from whichever model
worker thread runs it; glibc gives each thread its own malloc arena (up to 8 per core)
and fragments them, so RSS crept up by ~160 MB over a 5-minute, 4-stream soak
(bench/stream_load.py --soak) with nothing actually retained. Capping the arenas at 2
(the same as MALLOC_ARENA_MAX=2) kept it flat (715 -> 738 MB) at no measured cost.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(count: int = 2) -> bool:
    """Call before threads start; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False
