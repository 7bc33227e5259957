"""cors: Cross-Origin Resource Sharing headers and preflight answers (Kong's)."""
