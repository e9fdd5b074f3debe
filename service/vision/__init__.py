"""Models and the pool that runs them: one small class per model (numpy in, numpy out,
no I/O), and runtime.py, which owns the worker threads, one model instance per thread,
and admission to them.

May import: media (its decoder pool), ops (metrics), errors."""
