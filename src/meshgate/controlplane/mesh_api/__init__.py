"""The Mesh API: Kuma-style mesh resources, inspect and dataplane tokens over HTTP.

``create_mesh_app(store, engine, tokens, admin_token=...)`` builds the Starlette app; serve
it with ``meshgate.controlplane.admin_api.serve_admin``.  Resources are kept in the store as
``meshgate.controlplane.distribution.storage`` describes.
"""

from meshgate.controlplane.mesh_api.app import create_mesh_app

__all__ = ["create_mesh_app"]
