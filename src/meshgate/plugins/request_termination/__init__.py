"""request-termination: answer requests with a fixed response instead of proxying (Kong's)."""
