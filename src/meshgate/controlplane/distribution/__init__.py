"""Distribution: admitted sidecars get versioned snapshots pushed over TLS (``mgdp/1``).

* ``engine``: mesh state, sessions, certificate signing/rotation, push of changed snapshots;
* ``server``: the asyncio TLS server of the DP port;
* ``tokens``: dataplane tokens (JWT) that admit sidecars;
* ``certs``: CSR signing and the DP server's TLS material;
* ``storage``: mesh resources as store entities, and the whole mesh state loaded from them.

The wire protocol is defined in ``meshgate.agent.dataplane.protocol`` (both sides use it).
"""

from meshgate.controlplane.distribution.certs import ServerTLS, cert_fingerprint, server_tls
from meshgate.controlplane.distribution.engine import (
    AdmissionRefused,
    DataplaneStatus,
    DistributionEngine,
)
from meshgate.controlplane.distribution.server import DistributionServer, serve_distribution
from meshgate.controlplane.distribution.tokens import DataplaneTokens, TokenRefused

__all__ = [
    "AdmissionRefused",
    "DataplaneStatus",
    "DataplaneTokens",
    "DistributionEngine",
    "DistributionServer",
    "ServerTLS",
    "TokenRefused",
    "cert_fingerprint",
    "serve_distribution",
    "server_tls",
]
