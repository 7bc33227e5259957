"""ip-restriction: allow or deny requests by client IP address or CIDR range (Kong's)."""
