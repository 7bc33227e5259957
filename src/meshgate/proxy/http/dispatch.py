"""Turning a parsed request into an ``Exchange``: route it, apply the route's protocol rules,
run the route's plugins (``filters.flow``, only on routes that have some), build the upstream
request head, start proxying.  Answers 404/426/30x/503 itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshgate.proxy.filters import flow
from meshgate.proxy.http import errors
from meshgate.proxy.http.exchange import Exchange
from meshgate.proxy.http.heads import CRLF, build_request_head, forwarded_headers
from meshgate.proxy.router import upstream_path

if TYPE_CHECKING:
    from meshgate.proxy.compiled import CompiledRoute, CompiledService
    from meshgate.proxy.filters.context import HttpContext
    from meshgate.proxy.http.request import ProxyRequest
    from meshgate.proxy.http.server import HttpProxyProtocol
    from meshgate.proxy.router import RouteMatch

_UPGRADE_TLS = b"Upgrade: TLS/1.2, HTTP/1.1\r\n"
_CONNECTION_UPGRADE = b"Connection: Upgrade\r\n"


def hostname_of(host: bytes) -> bytes:
    """``host[:port]`` without the port (IPv6 literals keep their brackets)."""
    if host.startswith(b"["):
        end = host.find(b"]")
        return host if end < 0 else host[: end + 1]
    return host.partition(b":")[0]


def dispatch(client: HttpProxyProtocol, req: ProxyRequest) -> None:
    """Route ``req`` on the config current right now and start proxying it (or answer)."""
    config = client.engine.state.config  # read once: a reload applies from the next request
    routers = config.listener_routers  # set when routes are scoped to listeners
    router = config.router if routers is None else routers.get(client.listener_name, config.router)
    match = router.match_head(req.method, req.host, req.raw_path, req.header_map, client.sni)
    if match is None:
        client.reply(req, 404, "no-route", errors.MSG_NO_ROUTE)
        return
    croute: CompiledRoute = match.target
    if croute.https_only and not client.is_https(req):
        _redirect_to_https(client, req, croute)
        return
    req.uri_captures = match.uri_captures
    req._path = match.normalized_path
    chains = croute.plugin_chains
    if chains is not None:
        chain = chains[client.tls]
        if chain is not None:
            flow.start(client, req, croute, match, chain)  # calls ``forward`` when through
            return
    forward(client, req, croute, match, None)


class UpstreamPlan:
    """What forwarding a request on one ``RouteMatch`` to one service always adds up to:
    kept on the match (``RouteMatch.upstream_plan``), which the router remembers per request
    head, so that this is worked out once per (head, service), not per request."""

    __slots__ = ("host_header", "prefix", "prefix_line", "service", "target")

    def __init__(self, service: CompiledService, match: RouteMatch[CompiledRoute]) -> None:
        self.service = service
        self.target = upstream_path(service.path, match).encode("utf-8", "surrogateescape")
        self.host_header = service.host_header.encode("latin-1")
        route = match.route
        prefix: bytes | None = None  # X-Forwarded-Prefix, unless a trusted client sent one
        if route.strip_path and match.matched_path and not match.matched_path.startswith("~"):
            prefix = match.matched_path.encode("utf-8", "surrogateescape")
        self.prefix = prefix
        self.prefix_line = b"X-Forwarded-Prefix: " + prefix + CRLF if prefix else b""


def forward(
    client: HttpProxyProtocol,
    req: ProxyRequest,
    croute: CompiledRoute,
    match: RouteMatch[CompiledRoute],
    ctx: HttpContext | None,
) -> None:
    """Build the upstream head (with the plugins' changes in ``ctx``) and start proxying."""
    service = croute.service
    if croute.backends is not None:
        service = croute.backends.pick()  # a traffic split
    if service is None:
        client.reply(req, 503, "no-service", errors.MSG_NO_SERVICE)
        return
    plan: UpstreamPlan | None = match.upstream_plan
    if plan is None or plan.service is not service:
        plan = match.upstream_plan = UpstreamPlan(service, match)
    host_header = req.host if croute.route.preserve_host and req.host else plan.host_header
    edit = croute.request_edit
    if edit is not None:
        req.kept = edit.apply(req.kept)
        if edit.host is not None:
            host_header = edit.host
    query = req.raw_query
    target = plan.target if query is None else plan.target + b"?" + query
    forwarded = _forwarded(client, req, plan)
    if ctx is None:
        head = build_request_head(
            req.method, target, host_header, req.kept, forwarded,
            chunked=req.chunked, upgrade=req.upgrade,
        )  # fmt: skip
    else:
        head = flow.request_head(ctx, req, target, host_header, forwarded)
    exchange = Exchange(client, req, croute, service, head)
    req.exchange = exchange
    exchange.start()


def _forwarded(client: HttpProxyProtocol, req: ProxyRequest, plan: UpstreamPlan) -> bytes:
    if not client.trusted:
        host = req.host or b""
        return (
            client.fwd_static + b"X-Forwarded-Host: "
            + (hostname_of(host) if host[:1] == b"[" else host.partition(b":")[0])
            + b"\r\nX-Forwarded-Path: " + req.raw_path + b"\r\n" + plan.prefix_line
        )  # fmt: skip
    return forwarded_headers(
        client_ip=client.client_ip_bytes,
        incoming_for=req.fwd_for,
        proto=req.fwd_proto if req.fwd_proto else client.scheme_bytes,
        host=req.fwd_host if req.fwd_host else hostname_of(req.host or b""),
        port=req.fwd_port if req.fwd_port else client.port_bytes,
        path=req.raw_path,
        prefix=req.fwd_prefix if req.fwd_prefix else plan.prefix,
        real_ip=req.real_ip if req.real_ip else client.client_ip_bytes,
    )


def _redirect_to_https(client: HttpProxyProtocol, req: ProxyRequest, croute: CompiledRoute) -> None:
    code = croute.route.https_redirect_status_code
    if code == 426:
        client.reply(req, 426, "https-required", errors.MSG_HTTPS, extra=_UPGRADE_TLS, upgrade=True)
        return
    location = b"https://" + hostname_of(req.host or b"") + req.raw_path
    if req.raw_query is not None:
        location += b"?" + req.raw_query
    client.reply(req, code, "https-required", "", extra=b"Location: " + location + b"\r\n")
