"""``render_metrics()``: the node's metrics in Prometheus text format (0.0.4), for the
Admin/Status API's ``/metrics``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (multi-worker node), values come from every worker's
files (``MultiProcessCollector``) plus the rendering process's own process/platform
figures; otherwise from this process's registry.  Exposition follows Kong's: counters
are ``<name>_total`` except ``kong_bandwidth_bytes`` (Kong's name has no suffix), and
prometheus-client's ``_created`` samples are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

import meshgate

from . import metrics, sources

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NO_TOTAL_SUFFIX = frozenset({"kong_bandwidth_bytes"})
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(name: str, sample: Sample) -> str:
    labels = ""
    if sample.labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
        labels = "{" + inner + "}"
    return f"{name}{labels} {floatToGoString(sample.value)}\n"  # type: ignore[no-untyped-call]


def format_text(collector: Collector) -> bytes:
    """The text exposition of everything ``collector`` yields."""
    out: list[str] = []
    for family in collector.collect():
        name = family.name
        kind = family.type
        shown = name
        renamed: dict[str, str] = {}
        if kind == "counter":
            if name in _NO_TOTAL_SUFFIX:
                renamed[name + "_total"] = name
            else:
                shown = name + "_total"
        elif kind == "info":
            shown = name + "_info"
        kind = _TYPES.get(kind, kind)
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines = [
            _line(renamed.get(s.name, s.name), s)
            for s in family.samples
            if not s.name.endswith("_created")
        ]
        if not lines:
            continue
        out.append(f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n")
        out.extend(lines)
    return "".join(out).encode()


def _collector() -> Collector:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and os.path.isdir(path):
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        return registry
    return REGISTRY


def render_metrics() -> tuple[bytes, str]:
    """(body, content type) for ``GET /metrics``."""
    node_id = os.environ.get("MESHGATE_NODE_ID", "")
    metrics.node_info().labels(node_id, meshgate.__version__).set(1)
    sources.sample()
    return format_text(_collector()), CONTENT_TYPE


def metric_names(text: bytes) -> Iterable[str]:
    """The sample names in a rendered text (for tests and tooling)."""
    for raw in text.decode().splitlines():
        if raw and not raw.startswith("#"):
            yield raw.split("{", 1)[0].split(" ", 1)[0]
