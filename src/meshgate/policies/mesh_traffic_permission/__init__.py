"""MeshTrafficPermission: identity-based allow/deny on inbounds."""
