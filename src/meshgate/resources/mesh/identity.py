"""Workload identities: the URI SANs a dataplane's certificate carries and clients are matched on.

* ``spiffe://<mesh>/<service>`` for each service the dataplane serves (its inbounds'
  ``kuma.io/service``);
* ``kuma://<tag>/<value>`` for every other tag of its inbounds (as Kuma does), so traffic
  permissions can select clients by tags (``MeshSubset``), not only by service.

Tag names and values are percent-encoded where a URI needs it; the same function builds the
certificate's SANs and the identities permissions ask for, so they always compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from meshgate.resources.mesh.base import SERVICE_TAG
from meshgate.resources.mesh.dataplane import Dataplane

_DNS_LABELS = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def spiffe_id(mesh: str, service: str) -> str:
    return f"spiffe://{mesh}/{quote(service, safe='-._~')}"


def tag_uri(key: str, value: str) -> str:
    return f"kuma://{quote(key, safe='-._~/')}/{quote(value, safe='-._~')}"


def tag_identity(mesh: str, key: str, value: str) -> str:
    """The URI SAN that proves a client carries the tag ``key=value``."""
    return spiffe_id(mesh, value) if key == SERVICE_TAG else tag_uri(key, value)


def identities_for_tags(mesh: str, tags: Mapping[str, str]) -> tuple[str, ...]:
    """The URI SANs a client must all carry to match a selector requiring ``tags``."""
    return tuple(sorted(tag_identity(mesh, key, value) for key, value in tags.items()))


def workload_uris(dataplane: Dataplane) -> list[str]:
    """Every URI SAN of the dataplane's workload certificate: SPIFFE ids first, then tags."""
    spiffe = [spiffe_id(dataplane.mesh, service) for service in dataplane.services()]
    tags = sorted(
        {
            tag_uri(key, value)
            for inbound in dataplane.networking.inbound
            for key, value in inbound.tags.items()
            if key != SERVICE_TAG
        }
    )
    return spiffe + tags


def workload_dns_names(dataplane: Dataplane) -> list[str]:
    """DNS SANs: ``<service>.mesh`` for each service whose name is a valid host name."""
    names = [f"{service}.mesh" for service in dataplane.services()]
    return [name for name in names if _DNS_LABELS.match(name)]
