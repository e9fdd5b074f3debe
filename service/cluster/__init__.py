"""What N replicas share so they behave like one: the shared state store (in memory,
or Redis with SERVICE_REDIS_URL) and this replica's identity, heartbeat and drain.

May import: ops, errors."""
