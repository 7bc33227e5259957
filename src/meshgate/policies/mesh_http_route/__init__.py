"""MeshHTTPRoute: L7 routing of outbound HTTP traffic (matches, header edits, traffic splits)."""
