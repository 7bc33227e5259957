"""A dataplane's outbounds → plain listeners on loopback that send traffic into the mesh.

Per outbound: a listener on ``address:port`` (127.0.0.1 by default) speaking the
destination's protocol.  HTTP destinations get the routes MeshHTTPRoute gives (always with a
catch-all to the destination itself); TCP ones one ``tcp`` route.  Every destination a route
can reach gets a Service/Cluster (``MeshContext.destination``): endpoints are the serving
inbounds of that service in the mesh, reached with mesh mTLS.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshgate import snapshot
from meshgate.compiler.mesh_context import MeshContext
from meshgate.policies.mesh_http_route import api as route_api
from meshgate.policies.mesh_http_route.compile import build_routes, merged_rules
from meshgate.resources.mesh.base import PROTOCOL_TAG
from meshgate.resources.mesh.dataplane import Outbound


@dataclass(frozen=True, slots=True)
class OutboundParts:
    listener: snapshot.Listener
    routes: tuple[snapshot.Route, ...]


def compile_outbound(context: MeshContext, outbound: Outbound) -> OutboundParts:
    name = f"outbound:{outbound.address}:{outbound.port}"
    destination = outbound.service
    protocol = context.destination_protocol(destination, outbound.tags.get(PROTOCOL_TAG))
    main_service = context.destination(destination, protocol)
    listener = snapshot.Listener(
        name=name, address=outbound.address, port=outbound.port, protocol=protocol
    )
    if protocol == "tcp":
        route = snapshot.Route(
            id=name,
            name=destination,
            protocols=("tcp",),
            service=main_service,
            listeners=(name,),
        )
        return OutboundParts(listener, (route,))

    def service_of(ref: route_api.BackendRef) -> str:
        return context.destination(ref.name, protocol, ref.tags)

    rules = merged_rules(context.ordered(route_api.TYPE), destination)
    routes = build_routes(
        rules, listener=name, destination_service=main_service, service_of=service_of
    )
    return OutboundParts(listener, tuple(routes))
