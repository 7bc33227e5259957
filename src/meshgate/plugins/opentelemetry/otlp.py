"""Spans as OTLP/JSON (``ExportTraceServiceRequest``, protobuf's JSON mapping: hex ids,
64-bit integers as strings, enums as numbers), POSTed to ``/v1/traces`` with
``Content-Type: application/json`` — every OpenTelemetry collector accepts it.  (Kong
sends the protobuf encoding of the same message.)"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import meshgate

KIND_SERVER = 2
KIND_CLIENT = 3
STATUS_UNSET = 0
STATUS_ERROR = 2
SCOPE = {"name": "kong-internal", "version": meshgate.__version__}


@dataclass(slots=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error: bool = False


def attribute_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": attribute_value(v)} for k, v in values.items() if v is not None]


def span_json(span: SpanRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": attributes(span.attributes),
        "status": {"code": STATUS_ERROR if span.error else STATUS_UNSET},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    return out


def export_request(resource: list[dict[str, Any]], spans: list[dict[str, Any]]) -> bytes:
    """The body of one export: ``spans`` are ``span_json`` dicts."""
    message = {
        "resourceSpans": [
            {"resource": {"attributes": resource}, "scopeSpans": [{"scope": SCOPE, "spans": spans}]}
        ]
    }
    return json.dumps(message, separators=(",", ":")).encode()
