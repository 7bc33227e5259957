"""rate-limiting: limit how many requests a client may make per second … year (Kong's)."""
