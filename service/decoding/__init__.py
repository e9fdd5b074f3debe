"""Decoding of client media in sandboxed worker processes (never in the service process)."""
