"""Operating the service: Prometheus metrics, structured logs (with request and
session ids, never images, embeddings or tokens), result webhooks, memory hygiene.

May import: errors only; every other layer may import these."""
