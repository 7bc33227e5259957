"""tcp-log: send each request's log record (Kong's serializer) as a JSON line over TCP/TLS."""
