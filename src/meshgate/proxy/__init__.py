"""meshgate.proxy."""
