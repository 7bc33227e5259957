"""Config text for every process the bench starts: upstream nginx, nginx proxy, Envoy, meshgate.

Pure functions from ports and sizes to file contents; nothing here starts a process.
"""

from __future__ import annotations

import json
import os

SMALL_BODY = "hello"  # 5 bytes, served on every path but /1k
KIB_BODY = ("0123456789abcdef" * 64)[:1024]
KIB_PATH = "/1k"

# The route the routes case hits: in the middle of file order and name order, without hosts
# (so after every host-bearing route in Kong priority order), and as long as its neighbours.
ROUTES_HIT_INDEX = 5000


def route_path(index: int) -> str:
    return f"/r{index:05d}"


def _nginx_common(prefix: str, workers: int) -> str:
    user_line = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user_line}"
        f"worker_processes {workers};\n"
        "daemon off;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
    )


def _nginx_http_common(prefix: str) -> str:
    return (
        "    access_log off;\n"
        "    keepalive_requests 1000000;\n"
        "    keepalive_timeout 300s;\n"
        "    default_type text/plain;\n"
        f"    client_body_temp_path {prefix}/client_body;\n"
        f"    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
    )


def upstream_nginx_conf(prefix: str, port: int) -> str:
    """The origin: 5 B on every path, 1 KiB on /1k, keep-alive on, one worker."""
    return (
        _nginx_common(prefix, 1) + "http {\n" + _nginx_http_common(prefix) + "    server {\n"
        f"        listen 127.0.0.1:{port};\n"
        f'        location = {KIB_PATH} {{ return 200 "{KIB_BODY}"; }}\n'
        f'        location / {{ return 200 "{SMALL_BODY}"; }}\n'
        "    }\n"
        "}\n"
    )


def proxy_nginx_conf(prefix: str, port: int, upstream_port: int, pool_size: int) -> str:
    """nginx proxy_pass with an upstream keep-alive pool of ``pool_size`` idle connections."""
    return (
        _nginx_common(prefix, 1)
        + "http {\n"
        + _nginx_http_common(prefix)
        + "    upstream bench_upstream {\n"
        f"        server 127.0.0.1:{upstream_port};\n"
        f"        keepalive {pool_size};\n"
        "        keepalive_requests 1000000;\n"
        "        keepalive_timeout 300s;\n"
        "    }\n"
        "    server {\n"
        f"        listen 127.0.0.1:{port};\n"
        "        location / {\n"
        "            proxy_pass http://bench_upstream;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "        }\n"
        "    }\n"
        "}\n"
    )


def envoy_bootstrap(port: int, upstream_port: int) -> str:
    """Static Envoy bootstrap (JSON, which Envoy reads like YAML); HTTP/1.1 pool keeps alive."""
    socket = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    upstream_socket = {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "codec_type": "HTTP1",
        "route_config": {
            "name": "bench",
            "virtual_hosts": [
                {
                    "name": "bench",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                }
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    bootstrap = {
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": socket,
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "upstream",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "upstream",
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": upstream_socket}}]}
                        ],
                    },
                }
            ],
        }
    }
    return json.dumps(bootstrap, indent=1) + "\n"


def kong_single_route(upstream_port: int) -> str:
    """The gateway config of the main cases: one service, one route on ``/``."""
    return (
        '_format_version: "3.0"\n'
        "services:\n"
        "- name: bench\n"
        f"  url: http://127.0.0.1:{upstream_port}\n"
        '  routes: [{name: bench, paths: ["/"]}]\n'
    )


def _route_yaml(index: int) -> str:
    lines = [
        f"  - name: r{index:05d}\n",
        f'    paths: ["{route_path(index)}"]\n',
        "    strip_path: false\n",
    ]
    # Hosts mix: a quarter exact hosts, a quarter wildcard hosts, the rest none.
    if index % 4 == 1:
        lines.append(f'    hosts: ["h{index:05d}.bench.test"]\n')
    elif index % 4 == 2:
        lines.append(f'    hosts: ["*.w{index:05d}.bench.test"]\n')
    return "".join(lines)


def kong_many_routes(upstream_port: int, total_routes: int) -> str:
    """``total_routes`` routes ``/r00001``…; the hit route ``route_path(ROUTES_HIT_INDEX)`` is one.

    With ``total_routes == 1`` only the hit route exists: the baseline of the routes case.
    """
    if total_routes == 1:
        indexes = [ROUTES_HIT_INDEX]
    else:
        if total_routes < 2 * ROUTES_HIT_INDEX:
            raise ValueError(f"need at least {2 * ROUTES_HIT_INDEX} routes, got {total_routes}")
        indexes = list(range(1, total_routes + 1))
    head = (
        '_format_version: "3.0"\n'
        "services:\n"
        "- name: bench\n"
        f"  url: http://127.0.0.1:{upstream_port}\n"
        "  routes:\n"
    )
    return head + "".join(_route_yaml(index) for index in indexes)


def routes_request_path() -> str:
    return route_path(ROUTES_HIT_INDEX) + "/"


# The plugins case: key-auth + rate-limiting (never triggers) + prometheus on the route.
BENCH_API_KEY = "bench-key-0123456789"
PLUGINS_HEADERS = {"apikey": BENCH_API_KEY}
PLUGINS_ON_ROUTE = ("key-auth", "rate-limiting", "prometheus")


def kong_plugins_route(upstream_port: int, plugins: tuple[str, ...] = PLUGINS_ON_ROUTE) -> str:
    """``kong_single_route`` plus a consumer with a key and ``plugins`` on the route:
    key-auth (header ``apikey``), rate-limiting (local policy, 10**9/s: never refuses) and
    prometheus (status code, latency and bandwidth metrics)."""
    configs = {
        "key-auth": "{key_names: [apikey]}",
        "rate-limiting": "{second: 1000000000, policy: local}",
        "prometheus": "{status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true}",
    }
    lines = [
        '_format_version: "3.0"\n',
        "services:\n",
        "- name: bench\n",
        f"  url: http://127.0.0.1:{upstream_port}\n",
        "  routes:\n",
        "  - name: bench\n",
        '    paths: ["/"]\n',
    ]
    if plugins:
        lines.append("    plugins:\n")
        lines += [f"    - {{name: {name}, config: {configs[name]}}}\n" for name in plugins]
    lines += [
        "consumers:\n",
        "- username: bench-user\n",
        f"  keyauth_credentials: [{{key: {BENCH_API_KEY}}}]\n",
    ]
    return "".join(lines)
