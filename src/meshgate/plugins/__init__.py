"""meshgate.plugins."""
