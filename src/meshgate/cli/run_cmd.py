"""``meshgate run``: a standalone gateway from a Kong-format declarative file."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import typer
import uvloop

from meshgate import __version__
from meshgate.agent.logs import configure_logging
from meshgate.agent.supervisor import ApplyError, InProcessProxy, NodeOptions, Proxy, WorkerPool
from meshgate.cli.loading import LoadedConfig, exit_on_config_error, load_config
from meshgate.demo.upstreams import start_echo_upstream
from meshgate.errors import ConfigError
from meshgate.proxy.http.settings import ProxySettings
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.run")

DEMO_UPSTREAM_PORTS = (9001, 9002)


def run(
    config: Path = typer.Option(..., "-c", "--config", help="Kong-format declarative file."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Proxy worker processes."),
    proxy_listen: str = typer.Option(
        "127.0.0.1:8000, 127.0.0.1:8443 ssl",
        "--proxy-listen",
        envvar="MESHGATE_PROXY_LISTEN",
        help="Kong-style listen list, e.g. '0.0.0.0:8000, 0.0.0.0:8443 ssl'.",
    ),
    watch: bool = typer.Option(False, "--watch", help="Reload when the file changes."),
    access_log: str = typer.Option("on", "--access-log", help="on|off"),
    log_level: str = typer.Option("info", "--log-level"),
    drain_timeout: float = typer.Option(
        10.0, "--drain-timeout", help="Seconds to finish requests."
    ),
    demo_upstreams: bool = typer.Option(
        False, "--demo-upstreams", help="Also start the demo's echo upstreams on :9001 and :9002."
    ),
) -> None:
    """Run the gateway standalone: config from FILE, proxies on --proxy-listen."""
    configure_logging(log_level, access_log == "on")
    with exit_on_config_error(config):
        loaded = load_config(config, proxy_listen)
    options = NodeOptions(
        settings=ProxySettings(),
        drain_timeout=drain_timeout,
        log_level=log_level,
        access_log=access_log == "on",
    )
    uvloop.run(_serve(config, proxy_listen, loaded, options, workers, watch, demo_upstreams))


async def _serve(
    path: Path,
    proxy_listen: str,
    loaded: LoadedConfig,
    options: NodeOptions,
    workers: int,
    watch: bool,
    demo_upstreams: bool,
) -> None:
    servers: list[asyncio.Server] = []
    if demo_upstreams:
        for i, port in enumerate(DEMO_UPSTREAM_PORTS):
            server, _ = await start_echo_upstream(f"demo-{i + 1}", port=port)
            servers.append(server)
    proxy: Proxy = InProcessProxy(options) if workers == 1 else WorkerPool(options, workers)
    await proxy.start(loaded.snapshot)
    _print_banner(loaded, workers)

    stop = asyncio.Event()
    reload_now = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_now.set)

    async def reloader() -> None:
        nonlocal loaded
        mtime = _mtime(path)
        while not stop.is_set():
            try:
                await asyncio.wait_for(reload_now.wait(), 1.0 if watch else None)
            except TimeoutError:
                now = _mtime(path)
                if now == mtime:
                    continue
                mtime = now
            reload_now.clear()
            loaded = await _reload(path, proxy_listen, loaded, proxy)

    task = spawn(reloader(), name="config-reloader")
    await stop.wait()
    task.cancel()
    _log.info("shutting down: finishing in-flight requests")
    await proxy.stop()
    for server in servers:
        server.close()


async def _reload(
    path: Path, proxy_listen: str, current: LoadedConfig, proxy: Proxy
) -> LoadedConfig:
    try:
        loaded = load_config(path, proxy_listen, tls_default=current.tls_default)
    except ConfigError as exc:
        _log.error(
            "reload of %s refused, running config kept: %s",
            path,
            "; ".join(str(v) for v in exc.violations),
        )
        return current
    except OSError as exc:
        _log.error("reload of %s failed, running config kept: %s", path, exc)
        return current
    if loaded.snapshot.version == current.snapshot.version:
        return current
    try:
        await proxy.apply(loaded.snapshot)
    except (ApplyError, ValueError) as exc:
        _log.error("snapshot %s refused, running config kept: %s", loaded.snapshot.version, exc)
        return current
    _log.info("config reloaded: snapshot %s", loaded.snapshot.version)
    return loaded


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _print_banner(loaded: LoadedConfig, workers: int) -> None:
    snap = loaded.snapshot
    lines = [f"meshgate {__version__} running ({workers} worker{'s' if workers > 1 else ''})"]
    for listener in snap.listeners:
        lines.append(f"  proxy  {listener.protocol}://{listener.address}:{listener.port}")
    lines.append(
        f"  config {len(snap.services)} services, {len(snap.routes)} routes, "
        f"{len(snap.clusters)} clusters (snapshot {snap.version})"
    )
    typer.echo("\n".join(lines), err=True)
