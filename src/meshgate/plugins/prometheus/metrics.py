"""The metric objects, created once per process on first use (prometheus-client).

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set before ``prometheus_client`` is
imported (the supervisor sets it per node, workers inherit it), every process writes its
values to files there and ``exposition.render_metrics`` sums them: counters and histograms
add up across workers (including workers that exited, like Kong's shared dict); gauges say
how (``livesum`` for connections, ``livemax`` for target health, ``all`` — one series per
``pid`` — for worker process figures).  Without the variable, one in-process registry.
The supervisor should call ``prometheus_client.multiprocess.mark_process_dead(pid)`` for
a worker that exited so its live gauges go away.

Names and labels are Kong 3.x's (with ``workspace="default"``); buckets are Kong's.
"""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

KONG_LATENCY_BUCKETS = (1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000)
UPSTREAM_LATENCY_BUCKETS = (25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000)
HEALTH_STATES = ("healthchecks_off", "healthy", "unhealthy", "dns_error")
WORKSPACE = "default"


@functools.cache
def http_requests() -> Counter:
    return Counter(
        "kong_http_requests",
        "HTTP status codes per consumer/service/route in Kong",
        ["service", "route", "code", "source", "workspace", "consumer"],
    )


@functools.cache
def latency() -> tuple[Histogram, Histogram, Histogram]:
    """(request, upstream, kong) latency histograms in ms."""
    labels = ["service", "route", "workspace"]
    return (
        Histogram(
            "kong_request_latency_ms",
            "Total latency incurred during requests for each service/route in Kong",
            labels,
            buckets=UPSTREAM_LATENCY_BUCKETS,
        ),
        Histogram(
            "kong_upstream_latency_ms",
            "Latency added by upstream response for each service/route in Kong",
            labels,
            buckets=UPSTREAM_LATENCY_BUCKETS,
        ),
        Histogram(
            "kong_kong_latency_ms",
            "Latency added by Kong and enabled plugins for each service/route in Kong",
            labels,
            buckets=KONG_LATENCY_BUCKETS,
        ),
    )


@functools.cache
def bandwidth() -> Counter:
    return Counter(
        "kong_bandwidth_bytes",
        "Total bandwidth (ingress/egress) throughput in bytes",
        ["service", "route", "direction", "workspace", "consumer"],
    )


@functools.cache
def upstream_target_health() -> Gauge:
    return Gauge(
        "kong_upstream_target_health",
        "Health status of targets of upstream. States = healthchecks_off|healthy|unhealthy|"
        "dns_error, value is 1 when state is populated.",
        ["upstream", "target", "address", "state", "subsystem"],
        multiprocess_mode="livemax",
    )


@functools.cache
def connections() -> Gauge:
    return Gauge(
        "meshgate_connections",
        "Client connections of this node by state (Kong: kong_nginx_connections_total)",
        ["state"],
        multiprocess_mode="livesum",
    )


@functools.cache
def node_info() -> Gauge:
    return Gauge(
        "kong_node_info",
        "Kong Node metadata information",
        ["node_id", "version"],
        multiprocess_mode="max",
    )


@functools.cache
def worker_process() -> dict[str, Gauge]:
    """Per-worker copies of prometheus-client's process figures (one series per pid)."""
    names = {
        "resident_memory_bytes": "Resident memory size in bytes",
        "virtual_memory_bytes": "Virtual memory size in bytes",
        "cpu_seconds_total": "Total user and system CPU time spent in seconds",
        "open_fds": "Number of open file descriptors",
        "start_time_seconds": "Start time of the process since unix epoch in seconds",
    }
    return {
        name: Gauge(
            f"meshgate_worker_{name}",
            f"{text} (per meshgate worker process)",
            multiprocess_mode="all",
        )
        for name, text in names.items()
    }


@functools.cache
def log_entries_dropped() -> Counter:
    """Log entries the log plugins' bounded queues dropped (queue full / send failed)."""
    return Counter(
        "meshgate_log_entries_dropped",
        "Log entries dropped by http-log/tcp-log/file-log/opentelemetry queues",
        ["plugin", "reason"],
    )
