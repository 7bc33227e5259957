"""Kong's basic log serializer (``kong.log.serialize``) over a finished request's context.

Shape: ``request{method,uri,url,size,querystring,headers}``, ``upstream_uri``,
``response{status,size,headers}``, ``tries[{ip,port}]``, ``route``, ``service``,
``consumer``, ``authenticated_entity``, ``latencies{request,kong,proxy,receive}`` (ms),
``client_ip``, ``started_at`` (ms since the epoch), ``upstream_status``, ``source``.
``Authorization``/``Proxy-Authorization`` values are redacted, as Kong does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from meshgate.proxy.filters.headers import HeaderTable

if TYPE_CHECKING:
    from meshgate.proxy.filters.context import HttpContext

_REDACTED = frozenset({"authorization", "proxy-authorization"})


def _flatten(values: Mapping[str, Sequence[str]], redact: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, items in values.items():
        if redact and name in _REDACTED:
            out[name] = "REDACTED"
        elif len(items) == 1:
            out[name] = items[0]
        else:
            out[name] = list(items)
    return out


def _query(values: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, items in values.items():
        plain: list[Any] = [v if v != "" else True for v in items]
        out[name] = plain[0] if len(plain) == 1 else plain
    return out


def basic_serializer(ctx: HttpContext) -> dict[str, Any]:
    req = ctx.req
    uri = req.raw_path.decode("utf-8", "replace")
    if req.raw_query is not None:
        uri += "?" + req.raw_query.decode("utf-8", "replace")
    default_port = 443 if ctx.scheme == "https" else 80
    authority = ctx.host if ctx.port in (default_port, 0) else f"{ctx.host}:{ctx.port}"
    request_headers = HeaderTable.from_pairs(req.headers).values
    response_table = ctx.sent_response_table()
    started = ctx.start_time()
    end = ctx.t_end or req.started_at
    total_ms = max(0.0, (end - req.started_at) * 1000)
    exchange = ctx.exchange
    tries: list[dict[str, Any]] = []
    proxy_ms = receive_ms = 0.0
    kong_ms = total_ms
    upstream_status: int | None = None
    if exchange is not None:
        for target in [*exchange.tried, *([exchange.target] if exchange.target else [])]:
            tries.append({"ip": target.address, "port": target.port})
        if exchange.t_sent:
            kong_ms = (exchange.t_sent - req.started_at) * 1000
            if exchange.t_head:
                proxy_ms = (exchange.t_head - exchange.t_sent) * 1000
                receive_ms = max(0.0, (end - exchange.t_head) * 1000)
        upstream_status = exchange.status or None
    consumer = ctx.consumer
    credential = ctx.credential
    data: dict[str, Any] = {
        "request": {
            "method": req.method.decode("latin-1"),
            "uri": uri,
            "url": f"{ctx.scheme}://{authority}{uri}",
            "size": req.head_size + len(req.url) + req.body_received,
            "querystring": _query(ctx.query()),
            "headers": _flatten(request_headers, redact=True),
        },
        "upstream_uri": ctx.upstream_target.decode("utf-8", "replace"),
        "response": {
            "status": ctx.status,
            "size": ctx.bytes_sent,
            "headers": _flatten(response_table.values) if response_table else {},
        },
        "tries": tries,
        "route": ctx.route.model_dump(mode="json") if ctx.route else None,
        "service": ctx.service.model_dump(mode="json") if ctx.service else None,
        "consumer": (
            consumer.model_dump(mode="json", exclude={"credentials"}) if consumer else None
        ),
        "authenticated_entity": (
            {"id": credential.get("id"), "consumer_id": consumer.id if consumer else None}
            if credential is not None
            else None
        ),
        "latencies": {
            "request": round(total_ms, 3),
            "kong": round(kong_ms, 3),
            "proxy": round(proxy_ms, 3),
            "receive": round(receive_ms, 3),
        },
        "client_ip": ctx.client_ip,
        "started_at": int(started * 1000),
        "upstream_status": upstream_status,
        "source": "upstream" if upstream_status and ctx.exited is None else "kong",
    }
    for key, value in (ctx.serialize_values or {}).items():
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return data
