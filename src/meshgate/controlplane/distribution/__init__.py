"""Distribution: admitted sidecars get versioned snapshots pushed over TLS (``mgdp/1``).

* ``engine``: admission, push passes of changed snapshots, certificate rotation, cleanup;
* ``state``: the in-memory mesh state, changed resource by resource, and what each change
  reaches (``Delta``);
* ``sessions``: hello checks, connected sessions, their status, workload certificates;
* ``offline``: dataplanes gone without ``bye``: the offline record, cleanup ages;
* ``liveness``: the pure rules of replicas sharing a store (heartbeats, who holds what);
* ``replicas``: one replica's view of the others and the transactions that change it;
* ``status_records``: each dataplane's status (ACK, NACK, certificate) in the store, written by
  the replica holding it, read by the others;
* ``upkeep``: the periodic chores (heartbeat, offline marking and cleanup, rotation, roots);
* ``server``: the asyncio TLS server of the DP port;
* ``tokens``: dataplane tokens (JWT) that admit sidecars;
* ``certs``: CSR signing and the DP server's TLS material (one root, a leaf per set of names);
* ``storage``: mesh resources as store entities (collections, ids, documents, writes).

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
