"""The ``Dataplane`` resource: one sidecar, the services it fronts and the ones it calls.

Kuma's Universal shape::

    type: Dataplane
    mesh: default
    name: backend-01
    networking:
      address: 192.168.0.2              # where other sidecars reach this one
      inbound:
        - port: 8000                    # the sidecar's mTLS listener
          servicePort: 80               # the local app (default: port)
          serviceAddress: 127.0.0.1     # default 127.0.0.1
          protocol: http                # http | tcp | kafka (else tags kuma.io/protocol, else tcp)
          tags: {kuma.io/service: backend, version: v1}
      outbound:
        - port: 10000                   # the app calls 127.0.0.1:10000
          tags: {kuma.io/service: redis}

An inbound is an endpoint of its service unless ``state`` is ``NotReady``/``Ignored`` or
``health.ready`` is false (the control plane sets that from what it knows).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from meshgate.resources.kong_common import EntityViolations, Loc
from meshgate.resources.mesh.base import PROTOCOL_TAG, SERVICE_TAG, MeshModel, Name, Tags

Protocol = Literal["http", "tcp", "kafka"]


class Health(MeshModel):
    ready: bool = True


class Inbound(MeshModel):
    port: int = Field(ge=1, le=65535)
    service_port: int | None = Field(default=None, ge=1, le=65535)
    service_address: str = "127.0.0.1"
    address: str | None = None  # bind address; default: networking.address
    name: str | None = None
    protocol: Protocol | None = None
    tags: Tags
    health: Health | None = None
    state: Literal["Ready", "NotReady", "Ignored"] = "Ready"

    @model_validator(mode="after")
    def _has_service(self) -> Inbound:
        problems: list[tuple[Loc, str]] = []
        if SERVICE_TAG not in self.tags:
            problems.append((("tags",), f"tag '{SERVICE_TAG}' is required"))
        tagged = self.tags.get(PROTOCOL_TAG)
        if tagged is not None and tagged not in ("http", "tcp", "kafka"):
            problems.append((("tags", PROTOCOL_TAG), "must be one of http, tcp, kafka"))
        if problems:
            raise EntityViolations(problems)
        return self

    @property
    def service(self) -> str:
        return self.tags[SERVICE_TAG]

    @property
    def effective_protocol(self) -> Protocol:
        """``protocol``, else the ``kuma.io/protocol`` tag, else ``tcp`` (Kuma's default)."""
        if self.protocol is not None:
            return self.protocol
        tagged = self.tags.get(PROTOCOL_TAG, "tcp")
        return tagged if tagged in ("http", "kafka") else "tcp"  # type: ignore[return-value]

    @property
    def app_port(self) -> int:
        return self.service_port or self.port

    @property
    def serving(self) -> bool:
        """Whether this inbound takes traffic (is an endpoint of its service)."""
        ready = self.health is None or self.health.ready
        return ready and self.state == "Ready"


class Outbound(MeshModel):
    port: int = Field(ge=1, le=65535)
    address: str = "127.0.0.1"
    tags: Tags

    @model_validator(mode="after")
    def _has_service(self) -> Outbound:
        if SERVICE_TAG not in self.tags:
            raise EntityViolations([(("tags",), f"tag '{SERVICE_TAG}' is required")])
        return self

    @property
    def service(self) -> str:
        return self.tags[SERVICE_TAG]


class Admin(MeshModel):
    port: int = Field(ge=1, le=65535)


class Networking(MeshModel):
    address: str = Field(min_length=1)
    admin: Admin | None = None
    inbound: list[Inbound] = []
    outbound: list[Outbound] = []

    @model_validator(mode="after")
    def _ports_unique(self) -> Networking:
        problems: list[tuple[Loc, str]] = []
        bound: dict[tuple[str, int], str] = {}
        for index, inbound in enumerate(self.inbound):
            key = (inbound.address or self.address, inbound.port)
            if key in bound:
                problems.append((("inbound", index, "port"), f"port also used by {bound[key]}"))
            bound.setdefault(key, f"inbound[{index}]")
        for index, outbound in enumerate(self.outbound):
            key = (outbound.address, outbound.port)
            if key in bound:
                problems.append((("outbound", index, "port"), f"port also used by {bound[key]}"))
            bound.setdefault(key, f"outbound[{index}]")
        if problems:
            raise EntityViolations(problems)
        return self


class Dataplane(MeshModel):
    type: Literal["Dataplane"] = "Dataplane"
    name: Name
    mesh: Name = "default"
    labels: dict[str, str] = {}
    networking: Networking

    def tag_sets(self) -> list[dict[str, str]]:
        """The tags of each inbound (what top-level ``targetRef``s are matched against)."""
        return [inbound.tags for inbound in self.networking.inbound]

    def services(self) -> list[str]:
        """The services this dataplane serves, in inbound order, without repeats."""
        return list(dict.fromkeys(inbound.service for inbound in self.networking.inbound))
