"""response-ratelimiting: limits the upstream spends through a response header (Kong's)."""
