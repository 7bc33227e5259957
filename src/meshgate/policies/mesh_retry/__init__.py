"""MeshRetry: retries of outbound requests (HTTP) and connection attempts (TCP)."""
