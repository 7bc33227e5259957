"""Cheap facts about a finished request for log-phase plugins (metrics, traces).

``ctx.serialize()`` builds Kong's whole log record (route and service dumped as dicts); a
metrics plugin only needs a few numbers, so ``log_facts`` asks the engine's context for them
(its ``log_figures`` method) when it is one, and falls back to ``serialize()`` for any other
``RequestContext`` implementation (``log_figures``: the same as a plain tuple, for a plugin
that runs on every request and wants no object built).  Numbers match the serializer's:
latencies in ms (request = total, kong = until the request was sent upstream, proxy = upstream
time to the response head), sizes in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshgate.proxy.filters.api import RequestContext


@dataclass(slots=True)
class LogFacts:
    request_ms: float
    kong_ms: float
    proxy_ms: float | None  # None: never reached an upstream
    ingress_bytes: int
    egress_bytes: int
    from_service: bool  # the response came from the upstream (Kong's source "service")
    started_at: float  # monotonic seconds (engine) or epoch seconds (fallback)


# request_ms, kong_ms, proxy_ms, ingress_bytes, egress_bytes, from_service, started_at
Figures = tuple[float, float, float | None, int, int, bool, float]


def log_facts(ctx: RequestContext) -> LogFacts:
    return LogFacts(*log_figures(ctx))


def log_figures(ctx: RequestContext) -> Figures:
    """``log_facts`` as a tuple, in ``LogFacts`` field order."""
    engine_figures = getattr(ctx, "log_figures", None)
    if engine_figures is not None:  # the engine's context (HttpContext) has them at hand
        figures: Figures = engine_figures()
        return figures
    facts = _from_serializer(ctx)
    return (
        facts.request_ms, facts.kong_ms, facts.proxy_ms, facts.ingress_bytes,
        facts.egress_bytes, facts.from_service, facts.started_at,
    )  # fmt: skip


def _from_serializer(ctx: RequestContext) -> LogFacts:
    data = ctx.serialize()
    latencies = data.get("latencies") or {}
    from_service = data.get("source") == "upstream"
    return LogFacts(
        request_ms=float(latencies.get("request") or 0.0),
        kong_ms=float(latencies.get("kong") or 0.0),
        proxy_ms=float(latencies["proxy"]) if from_service and "proxy" in latencies else None,
        ingress_bytes=int((data.get("request") or {}).get("size") or 0),
        egress_bytes=int((data.get("response") or {}).get("size") or 0),
        from_service=from_service,
        started_at=float(data.get("started_at") or 0) / 1000.0,
    )
