"""Per-plugin cost: µs of CPU per request for each plugin of the bench's plugins case.

The plugins case's own Kong declarative config (``harness_configs.kong_plugins_route``) is
loaded and compiled as ``meshgate run`` does (declarative load → snapshot → the real
``compile_plugins`` with the bundled registry); then, per request, what the engine's
``flow`` runs on a route with plugins, with the engine's own functions: a parsed request
head (``scan_request_headers``), the engine's context (``ProxyContext``), rewrite+access
(``runner.advance``), the upstream head with the plugins' changes (``flow.request_head``),
the response phase on a 200 as the engine runs it (``flow.upstream_head``: no response
table unless a plugin of the chain has a response or body phase) and the end of the request
(``ProxyContext.finished``: the log phase queued on the event loop, run from there) — N
times in one thread, inside a running uvloop loop that gets a turn every
``_REQUESTS_PER_TURN`` requests (so log phases and prometheus's flushes run as they do in
a worker).  Not included: sockets, parsing and the rest of the engine (those are in the
end-to-end figure the bench prints next to this table).

Rows (each the median over interleaved repeats):
  runtime       a chain of one plugin that does nothing, minus the no-plugin path (no
                context, plain upstream head): what having any plugin on a route costs
  <plugin>      a chain of only that plugin, minus the one no-op plugin chain
  all plugins   the case's whole chain, minus the no-plugin path

rate-limiting counts in the node's shared counter file with its per-stripe lock, as under
``meshgate run`` (``MESHGATE_NODE_ID``/``MESHGATE_RUNTIME_DIR`` point at a temp folder).

    .venv/bin/python bench/plugin_cost.py [--iterations N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness_configs as configs

_UPSTREAM_PORT = 9  # never connected to: the config needs a service URL
_RESPONSE_LINES = [b"Content-Type: text/plain\r\n", b"Content-Length: 5\r\n"]
_FORWARDED = b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
_REQUESTS_PER_TURN = 32  # requests between two turns of the loop (a busy worker: many)


@dataclass(frozen=True)
class CostRow:
    name: str
    us_per_request: float
    what: str


def _request_headers() -> list[tuple[bytes, bytes]]:
    pairs = [("Host", "127.0.0.1:8000"), ("User-Agent", "wrk"), *configs.PLUGINS_HEADERS.items()]
    return [(name.encode(), value.encode()) for name, value in pairs]


class _Runner:
    """Builds the chains once and times one request through any of them."""

    def __init__(self) -> None:
        from meshgate.compiler import NodeSettings, compile_gateway
        from meshgate.proxy.filters.api import PluginConfig, PluginHandler
        from meshgate.proxy.filters.registry import PluginRegistry, spec_from_handler
        from meshgate.resources.declarative import load_text
        from meshgate.snapshot import PluginInstance

        class NoOpConfig(PluginConfig):
            pass

        class NoOp(PluginHandler):
            name = "bench-noop"
            PRIORITY = 1
            Config = NoOpConfig

            def access(self, ctx: Any) -> None:
                return None

        self.registry = PluginRegistry("bundled")
        self.registry.register(spec_from_handler("bench-noop", NoOp, "bench"))
        text = configs.kong_plugins_route(_UPSTREAM_PORT)
        node = NodeSettings.from_proxy_listen("127.0.0.1:8000")
        self.snapshot = compile_gateway(load_text(text), node)
        self.route = self.snapshot.routes[0]
        self.service = self.snapshot.services[0]
        self.node_resources: dict[str, Any] = {}
        self.every = tuple(self.snapshot.plugins)
        self.noop = PluginInstance(id="bench-noop", name="bench-noop", route=self.route.id)
        self.headers = _request_headers()
        self.bind(None)  # ``bind`` the running loop before timing

    def chain(self, plugins: tuple[Any, ...]) -> Any:
        from meshgate.proxy.filters.chain import compile_plugins
        from meshgate.proxy.filters.env import SnapshotEnv

        snap = self.snapshot.model_copy(update={"plugins": plugins})
        compiled = compile_plugins(snap, self.registry, SnapshotEnv(snap, self.node_resources))
        http_chain, _ = compiled.chains[self.route.id]
        return http_chain

    def request(self) -> Any:
        req = self.ProxyRequest("127.0.0.1", self.monotonic())
        req.method, req.raw_path, req.url = b"GET", b"/", b"/"
        req.headers = list(self.headers)
        self.scan_request_headers(req.headers, req)
        req.headers_done = req.message_complete = True
        req.head_size = 64
        return req

    def plain_once(self) -> None:
        """The engine's path on a route without plugins: the head, no context."""
        req = self.request()
        self.build_request_head(
            req.method, b"/", b"127.0.0.1:8000", req.kept, _FORWARDED, chunked=False, upgrade=None
        )

    def once(self, chain: Any) -> None:
        """One request through ``chain`` as ``flow`` carries it (its log phase is queued on
        the running loop by ``finished``, as in a worker)."""
        req = self.request()
        ctx = self.ProxyContext(self.client, req, self.croute, self.no_match, chain)
        req.ctx = ctx
        try:
            if self.advance(ctx, chain, 0) is not None:
                raise RuntimeError("a plugin of the bench chain awaited: cannot time it inline")
        except self.Exit as refused:
            raise RuntimeError(f"the bench chain refused the request: {refused}") from None
        ctx.phase = self.Phase.RESPONSE  # as flow._forward
        self.request_head(ctx, req, b"/", b"127.0.0.1:8000", _FORWARDED)
        exchange = self.Exchange(self.client, req, self.croute, self.cservice, b"")
        exchange.status, exchange.t_sent, exchange.t_head = 200, req.started_at, self.monotonic()
        facts = self.ResponseFacts()
        facts.kept = list(_RESPONSE_LINES)
        if not self.upstream_head(exchange, ctx, 200, facts):
            raise RuntimeError("a plugin of the bench chain took over the response")
        ctx.finished(200, 120, exchange)

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Import the engine's pieces once (not per request) and make the stand-ins for the
        server connection (on ``loop``: the one the log phases are queued on) and the
        compiled route that ``ProxyContext`` reads."""
        from meshgate.proxy.filters.api import Exit, Phase
        from meshgate.proxy.filters.flow import ProxyContext, request_head, upstream_head
        from meshgate.proxy.filters.runner import advance
        from meshgate.proxy.filters.testing import detached_client
        from meshgate.proxy.http.clock import monotonic
        from meshgate.proxy.http.exchange import Exchange
        from meshgate.proxy.http.heads import (
            ResponseFacts,
            build_request_head,
            scan_request_headers,
        )
        from meshgate.proxy.http.request import ProxyRequest

        self.Exit, self.Phase, self.ProxyContext = Exit, Phase, ProxyContext
        self.no_match: Any = None  # ProxyContext keeps the match for the engine's forward
        self.request_head, self.upstream_head, self.advance = request_head, upstream_head, advance
        self.monotonic, self.ProxyRequest = monotonic, ProxyRequest
        self.build_request_head, self.scan_request_headers = (
            build_request_head,
            scan_request_headers,
        )
        self.Exchange, self.ResponseFacts = Exchange, ResponseFacts
        # the engine's own classes where the context and the exchange hold them (a compiled
        # engine checks those types); the compiled route and service stay stand-ins
        self.client = detached_client(loop)
        self.cservice: Any = SimpleNamespace(service=self.service, balancer=None)
        self.croute: Any = SimpleNamespace(route=self.route, service=self.cservice)


async def _time_us_async(step: Callable[[], None], iterations: int) -> float:
    started = time.thread_time()  # CPU time of this thread: other work on the machine is out
    for i in range(iterations):
        step()
        if i % _REQUESTS_PER_TURN == _REQUESTS_PER_TURN - 1:
            await asyncio.sleep(0)  # the loop runs what the requests queued (log phases)
    await asyncio.sleep(0)
    return (time.thread_time() - started) * 1e6 / iterations


def measure(iterations: int = 20_000, repeats: int = 5) -> list[CostRow]:
    """The cost table (see the module docstring); takes about iterations x repeats x 60 µs."""
    runtime_dir = tempfile.mkdtemp(prefix="meshgate-plugin-cost-")
    saved = {k: os.environ.get(k) for k in ("MESHGATE_NODE_ID", "MESHGATE_RUNTIME_DIR")}
    os.environ["MESHGATE_NODE_ID"] = f"plugin-cost-{os.getpid()}"
    os.environ["MESHGATE_RUNTIME_DIR"] = runtime_dir
    try:
        import uvloop

        return uvloop.run(_measure(iterations, repeats))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for leftover in Path(runtime_dir).iterdir():
            leftover.unlink()
        os.rmdir(runtime_dir)


async def _measure(iterations: int, repeats: int) -> list[CostRow]:
    runner = _Runner()
    runner.bind(asyncio.get_running_loop())
    steps: dict[str, Callable[[], None]] = {"plain": runner.plain_once}
    noop_chain = runner.chain((runner.noop,))
    steps["noop"] = functools.partial(runner.once, noop_chain)
    for instance in runner.every:
        steps[instance.name] = functools.partial(runner.once, runner.chain((instance,)))
    steps["all"] = functools.partial(runner.once, runner.chain(runner.every))
    for step in steps.values():  # warm caches (key index, counters, metric children)
        await _time_us_async(step, max(1, iterations // 10))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            samples[name].append(await _time_us_async(step, iterations))
    median = {name: statistics.median(values) for name, values in samples.items()}
    rows = [
        CostRow("runtime", median["noop"] - median["plain"],
                "context + phases + rebuilt upstream head, one no-op plugin"),
    ]  # fmt: skip
    rows += [
        CostRow(instance.name, median[instance.name] - median["noop"], "that plugin alone")
        for instance in runner.every
    ]
    rows.append(
        CostRow("all plugins", median["all"] - median["plain"],
                " + ".join(i.name for i in runner.every) + ", runtime included")
    )  # fmt: skip
    return rows


def format_table(rows: list[CostRow], end_to_end: dict[str, dict[str, float]] | None = None) -> str:
    lines = [
        "== per-plugin cost, in-process (real compile + engine context, thread CPU time, no I/O)",
        f"{'plugin':<16}{'µs/request':>11}   what",
    ]
    lines += [f"{row.name:<16}{row.us_per_request:>11.1f}   {row.what}" for row in rows]
    for case, delta in (end_to_end or {}).items():
        lines.append(
            f"end-to-end {case}: meshgate-plugins - meshgate = "
            f"{delta['cpu_us']:+.1f} µs CPU/request (proxy CPU time), "
            f"{delta['wall_us']:+.1f} µs/request from RPS (1e6/rps; one proxy core)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    options = parser.parse_args(argv)
    rows = measure(options.iterations, options.repeats)
    if options.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
