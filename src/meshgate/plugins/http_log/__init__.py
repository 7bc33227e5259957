"""http-log: send each request's log record (Kong's serializer) as JSON to an HTTP endpoint,
batched through a bounded queue."""
