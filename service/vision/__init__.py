"""Model wrappers: one small class per model, numpy in, numpy out, no I/O or asyncio."""
