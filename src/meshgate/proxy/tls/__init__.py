"""TLS material for the proxy engine.

``server``: the SNI-selecting context of https listeners and ``sni_of``; ``upstream``: the
memoized client contexts towards upstreams and ``check_verify_depth``; ``certs``: making
and reading certificates (tests, CLI, demo); ``common``: defaults every context shares.
Mesh: ``identity`` (peer URI SANs, the upstream identity check), ``mesh_server`` (inbound
mTLS contexts), ``sniff`` (permissive TLS/plain detection), ``mesh_accept`` (how a mesh
listener accepts), ``permissions`` (traffic permissions per connection).
"""

from meshgate.proxy.tls.server import build_server_context, sni_of
from meshgate.proxy.tls.upstream import UpstreamContext, UpstreamTLS, check_verify_depth

__all__ = [
    "UpstreamContext",
    "UpstreamTLS",
    "build_server_context",
    "check_verify_depth",
    "sni_of",
]
