"""MeshTimeout: connection, idle and request timeouts of inbound and outbound traffic."""
