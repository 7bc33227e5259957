"""proxy-cache: cache upstream responses in memory and serve them to later requests (Kong's)."""
