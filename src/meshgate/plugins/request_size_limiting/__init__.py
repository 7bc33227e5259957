"""request-size-limiting: refuse request bodies larger than a configured size (Kong's)."""
