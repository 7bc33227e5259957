"""``GatewayConfig``: every Kong entity of one configuration, flat, references resolved to ids.

This is what a declarative file loads into and what the compiler reads.  Each tuple is in a
canonical order — by ``(created_at, id)`` — so two files describing the same entities produce
equal configs whatever their layout (nested or top-level) or entity order.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from meshgate.resources.kong import (
    SNI,
    CACertificate,
    Certificate,
    Consumer,
    Plugin,
    Route,
    Service,
    Target,
    Upstream,
)


class GatewayConfig(BaseModel):
    """All gateway entities; every entity has an ``id`` and a ``created_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # ``_transform`` of the file: true = plain-text credential secrets get hashed on import.
    transform: bool = True
    services: tuple[Service, ...] = ()
    routes: tuple[Route, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    targets: tuple[Target, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    plugins: tuple[Plugin, ...] = ()
    certificates: tuple[Certificate, ...] = ()
    snis: tuple[SNI, ...] = ()
    ca_certificates: tuple[CACertificate, ...] = ()
