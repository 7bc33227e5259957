"""MeshTimeout: timeouts towards destinations (``to``) and of the local app (``from``).

::

    type: MeshTimeout
    name: orders-timeouts
    spec:
      targetRef: {kind: Mesh}
      to:
        - targetRef: {kind: MeshService, name: orders}
          default:
            connectionTimeout: 2s
            idleTimeout: 20s
            http: {requestTimeout: 3s, streamIdleTimeout: 30s}
      from:
        - targetRef: {kind: Mesh}
          default: {http: {requestTimeout: 10s}}

``0`` (or ``0s``) disables a timeout.
"""

from __future__ import annotations

from pydantic import Field

from meshgate.resources.mesh.base import Duration, MeshModel
from meshgate.resources.mesh.policy import FromItem, PolicySpec, ToItem

TYPE = "MeshTimeout"


class HTTPTimeouts(MeshModel):
    request_timeout: Duration | None = None
    stream_idle_timeout: Duration | None = None
    max_stream_duration: Duration | None = None
    max_connection_duration: Duration | None = None
    request_headers_timeout: Duration | None = None


class TimeoutConf(MeshModel):
    connection_timeout: Duration | None = None
    idle_timeout: Duration | None = None
    http: HTTPTimeouts | None = None


class MeshTimeoutSpec(PolicySpec):
    to: list[ToItem[TimeoutConf]] = []
    from_: list[FromItem[TimeoutConf]] = Field(default=[], alias="from")
