"""The vendor-compatible request/response API (POST /api/verify)."""
