"""meshgate.proxy.http."""
