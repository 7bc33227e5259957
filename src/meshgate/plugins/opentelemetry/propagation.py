"""Trace context in HTTP headers: extract and inject W3C ``traceparent``, B3 (multi and
single header), Jaeger ``uber-trace-id`` and OT ``ot-tracer-*``.  Ids are lower-case hex;
64-bit trace ids are left-padded to 128 bits.  Formats without an implementation here
(aws, gcp, datadog, instana) are not extracted and are injected as W3C."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meshgate.proxy.filters.api import RequestContext

_HEX = re.compile(r"[0-9a-f]+\Z")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?\Z")
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class Incoming:
    """A parent trace context read from the request."""

    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    sampled: bool | None  # None: the sender did not decide
    format: str


def _trace_id(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    if len(value) not in (16, 32) or not _HEX.match(value) or set(value) == {"0"}:
        return None
    return value.rjust(32, "0")


def _span_id(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    if len(value) > 16 or not _HEX.match(value) or set(value) == {"0"}:
        return None
    return value.rjust(16, "0")


def _w3c(ctx: RequestContext) -> Incoming | None:
    header = ctx.header("traceparent")
    if not header:
        return None
    found = _TRACEPARENT.match(header.strip().lower())
    if found is None or found.group(1) == "ff":
        return None
    trace, span = found.group(2), found.group(3)
    if trace == ZERO_TRACE or span == ZERO_SPAN:
        return None
    return Incoming(trace, span, bool(int(found.group(4), 16) & 1), "w3c")


def _sampled_flag(value: str | None) -> bool | None:
    if value is None:
        return None
    value = value.strip().lower()
    if value in ("1", "d", "true"):
        return True
    if value in ("0", "false"):
        return False
    return None


def _b3(ctx: RequestContext) -> Incoming | None:
    trace = _trace_id(ctx.header("x-b3-traceid"))
    span = _span_id(ctx.header("x-b3-spanid"))
    if trace is None or span is None:
        return None
    sampled = _sampled_flag(ctx.header("x-b3-sampled"))
    if ctx.header("x-b3-flags") == "1":
        sampled = True
    return Incoming(trace, span, sampled, "b3")


def _b3_single(ctx: RequestContext) -> Incoming | None:
    header = ctx.header("b3")
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 2:
        return None
    trace, span = _trace_id(parts[0]), _span_id(parts[1])
    if trace is None or span is None:
        return None
    sampled = _sampled_flag(parts[2]) if len(parts) > 2 else None
    return Incoming(trace, span, sampled, "b3-single")


def _jaeger(ctx: RequestContext) -> Incoming | None:
    header = ctx.header("uber-trace-id")
    if not header:
        return None
    parts = header.strip().split(":")
    if len(parts) != 4:
        return None
    trace, span = _trace_id(parts[0].rjust(16, "0")), _span_id(parts[1])
    if trace is None or span is None:
        return None
    try:
        flags = int(parts[3], 16)
    except ValueError:
        return None
    return Incoming(trace, span, bool(flags & 1), "jaeger")


def _ot(ctx: RequestContext) -> Incoming | None:
    trace = _trace_id(ctx.header("ot-tracer-traceid"))
    span = _span_id(ctx.header("ot-tracer-spanid"))
    if trace is None or span is None:
        return None
    return Incoming(trace, span, _sampled_flag(ctx.header("ot-tracer-sampled")), "ot")


EXTRACTORS: dict[str, Callable[[RequestContext], Incoming | None]] = {
    "w3c": _w3c, "b3": _b3, "b3-single": _b3_single, "jaeger": _jaeger, "ot": _ot,
}  # fmt: skip
ALL_FORMATS = ("w3c", "b3", "b3-single", "jaeger", "ot")


def extract(ctx: RequestContext, formats: Sequence[str]) -> Incoming | None:
    for name in formats:
        extractor = EXTRACTORS.get(name)
        if extractor is not None:
            found = extractor(ctx)
            if found is not None:
                return found
    return None


def inject(ctx: RequestContext, fmt: str, trace_id: str, span_id: str, parent_id: str | None,
           sampled: bool) -> None:  # fmt: skip
    """Write the context for the upstream (``span_id`` is the caller span's id)."""
    flag = "1" if sampled else "0"
    if fmt == "b3":
        ctx.set_header("x-b3-traceid", trace_id)
        ctx.set_header("x-b3-spanid", span_id)
        ctx.set_header("x-b3-sampled", flag)
        if parent_id:
            ctx.set_header("x-b3-parentspanid", parent_id)
        else:
            ctx.clear_header("x-b3-parentspanid")
    elif fmt == "b3-single":
        value = f"{trace_id}-{span_id}-{flag}"
        ctx.set_header("b3", f"{value}-{parent_id}" if parent_id else value)
    elif fmt == "jaeger":
        ctx.set_header(
            "uber-trace-id", f"{trace_id}:{span_id}:{parent_id or '0'}:{'01' if sampled else '00'}"
        )
    elif fmt == "ot":
        ctx.set_header("ot-tracer-traceid", trace_id)
        ctx.set_header("ot-tracer-spanid", span_id)
        ctx.set_header("ot-tracer-sampled", flag)
    else:
        ctx.set_header("traceparent", f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}")
