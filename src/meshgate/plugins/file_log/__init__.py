"""file-log: append each request's log record (Kong's serializer) as a JSON line to a file."""
