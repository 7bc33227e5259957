"""MeshHealthCheck: active health checks of destination endpoints."""
