"""MeshCircuitBreaker: connection limits and outlier detection."""
