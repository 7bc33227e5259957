"""The built-in CA: per-mesh roots, workload certificates with SPIFFE ids, rotation.

``MeshCA`` (manager) is what the control plane uses; ``certs`` holds the certificate work
(also usable alone: ``spiffe_ids_of`` to check a peer); ``storage`` keeps roots in the store
(documents of type ``mesh_ca``) or in memory.
"""

from meshgate.controlplane.ca.certs import (
    RootCA,
    WorkloadCert,
    generate_root,
    issue_workload,
    issued_by,
    load_provided,
    needs_rotation,
    spiffe_ids_of,
    uri_sans_of,
)
from meshgate.controlplane.ca.manager import MeshCA
from meshgate.controlplane.ca.storage import (
    CA_DOC_TYPE,
    CAStorage,
    MemoryCAStorage,
    StoreCAStorage,
)
from meshgate.resources.mesh.identity import spiffe_id

__all__ = [
    "CA_DOC_TYPE",
    "CAStorage",
    "MemoryCAStorage",
    "MeshCA",
    "RootCA",
    "StoreCAStorage",
    "WorkloadCert",
    "generate_root",
    "issue_workload",
    "issued_by",
    "load_provided",
    "needs_rotation",
    "spiffe_id",
    "spiffe_ids_of",
    "uri_sans_of",
]
