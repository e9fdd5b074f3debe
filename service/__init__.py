"""Video verification service: liveness and face comparison behind a vendor-compatible API."""
