"""meshgate.compiler: resources → ``Snapshot`` (pure functions, golden-tested).

``compile_gateway(config, node)`` turns a ``GatewayConfig`` into the snapshot of one gateway
node described by ``NodeSettings``.
"""

from meshgate.compiler.gateway import compile_gateway
from meshgate.compiler.node import NodeSettings, parse_proxy_listen

__all__ = ["NodeSettings", "compile_gateway", "parse_proxy_listen"]
