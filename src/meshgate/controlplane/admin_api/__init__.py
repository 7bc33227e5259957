"""The Kong-compatible Admin API (Starlette app served by uvicorn).

``create_admin_app(store, node_info=NodeInfo(), ...)`` builds the ASGI app;
``await serve_admin(app, host, port)`` serves it in the running event loop and returns an
``AdminServer`` (``.port``, ``await .stop()``).  Writes go to the store; the running config
follows the store's ``subscribe()`` feed (``on_change`` is an optional hook called with the
new revision after each write, before the response is sent).  ``serve_admin(...,
tls=AdminTLS(cert, key, client_ca))`` serves HTTPS; with a client CA it requires client
certificates (mutual TLS).
"""

from meshgate.controlplane.admin_api.app import AdminServer, create_admin_app, serve_admin
from meshgate.controlplane.admin_api.config_api import apply_declarative
from meshgate.controlplane.admin_api.context import DEFAULT_MAX_BODY_BYTES, OnChange
from meshgate.controlplane.admin_api.info import AVAILABLE_PLUGINS, KONG_COMPAT_VERSION, NodeInfo
from meshgate.controlplane.admin_api.tls import AdminTLS

__all__ = [
    "AVAILABLE_PLUGINS",
    "DEFAULT_MAX_BODY_BYTES",
    "KONG_COMPAT_VERSION",
    "AdminServer",
    "AdminTLS",
    "NodeInfo",
    "OnChange",
    "apply_declarative",
    "create_admin_app",
    "serve_admin",
]
