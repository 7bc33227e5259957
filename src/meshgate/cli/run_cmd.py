"""``meshgate run``: a standalone node — proxy workers, the config store and the Admin API.

With ``-c FILE`` the node runs DB-less: the file is loaded into an in-memory store, the Admin
API is read-only, and ``--watch``/SIGHUP reload the file.  With ``--store URL`` (SQLite file or
PostgreSQL) the Admin API is writable and several nodes may share one PostgreSQL database.

The Admin API listens on loopback by default.  It serves HTTPS with ``--admin-cert`` and
``--admin-key`` (or an ``ssl`` flag on ``--admin-listen``, Kong's ``127.0.0.1:8444 ssl``,
which then needs them), and with ``--admin-client-ca`` requires client certificates signed by
that CA.  Beyond loopback it needs an admin token or a client CA: ``run`` refuses to start
otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import typer
import uvloop

from meshgate import __version__, snapshot
from meshgate.agent.logs import configure_logging
from meshgate.agent.node_env import NodeEnvironment
from meshgate.agent.supervisor import InProcessProxy, NodeOptions, Proxy, WorkerPool
from meshgate.cli.loading import DEFAULT_PROXY_LISTEN
from meshgate.cli.violations import print_violations
from meshgate.compiler import NodeSettings
from meshgate.controlplane.admin_api import (
    AdminServer,
    AdminTLS,
    NodeInfo,
    create_admin_app,
    serve_admin,
)
from meshgate.controlplane.admin_api.ttl_purge import run_ttl_purge
from meshgate.controlplane.gateway_node import GatewayNode, import_file
from meshgate.demo.upstreams import start_echo_upstream
from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import configure_plugins
from meshgate.proxy.http.settings import ProxySettings
from meshgate.store import Store, migration_status, open_store
from meshgate.store.migrations import pending
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.run")

DEMO_UPSTREAM_PORTS = (9001, 9002)


@dataclass(slots=True)
class RunPlan:
    """What ``run`` was asked to do, checked."""

    config: Path | None
    store_url: str
    proxy_listen: str
    admin_listen: tuple[str, int] | None
    admin_token: str | None
    admin_tls: AdminTLS | None
    migrate: bool
    workers: int
    watch: bool
    demo_upstreams: bool
    options: NodeOptions


def run(
    config: Path | None = typer.Option(
        None, "-c", "--config", help="Kong-format declarative file: run DB-less from it."
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        envvar="MESHGATE_STORE",
        help="Config store: sqlite:///path.db or postgresql://… (default sqlite:///meshgate.db).",
    ),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Proxy worker processes."),
    proxy_listen: str = typer.Option(
        DEFAULT_PROXY_LISTEN,
        "--proxy-listen",
        envvar="MESHGATE_PROXY_LISTEN",
        help="Kong-style listen list, e.g. '0.0.0.0:8000, 0.0.0.0:8443 ssl'.",
    ),
    admin_listen: str = typer.Option(
        "127.0.0.1:8001",
        "--admin-listen",
        envvar="MESHGATE_ADMIN_LISTEN",
        help="HOST:PORT [ssl], or off.",
    ),
    admin_cert: Path | None = typer.Option(
        None, "--admin-cert", envvar="MESHGATE_ADMIN_CERT", help="Serve the Admin API over HTTPS."
    ),
    admin_key: Path | None = typer.Option(
        None, "--admin-key", envvar="MESHGATE_ADMIN_KEY", help="The --admin-cert's private key."
    ),
    admin_client_ca: Path | None = typer.Option(
        None,
        "--admin-client-ca",
        envvar="MESHGATE_ADMIN_CLIENT_CA",
        help="Require Admin API clients to present a certificate signed by this CA (mTLS).",
    ),
    no_migrate: bool = typer.Option(
        False,
        "--no-migrate",
        help="Do not migrate the store on start; refuse to start (exit 3) if it needs it.",
    ),
    admin_token: str | None = typer.Option(
        None,
        "--admin-token",
        envvar="MESHGATE_ADMIN_TOKEN",
        help="Required on Admin API requests; mandatory when it listens beyond loopback.",
    ),
    watch: bool = typer.Option(False, "--watch", help="Reload the -c file when it changes."),
    access_log: str = typer.Option("on", "--access-log", envvar="MESHGATE_ACCESS_LOG"),
    log_level: str = typer.Option("info", "--log-level"),
    drain_timeout: float = typer.Option(
        10.0, "--drain-timeout", help="Seconds to finish requests."
    ),
    demo_upstreams: bool = typer.Option(
        False, "--demo-upstreams", help="Also start the demo's echo upstreams on :9001 and :9002."
    ),
    plugins: str = typer.Option(
        "bundled",
        "--plugins",
        envvar="MESHGATE_PLUGINS",
        help="Kong's plugins setting: 'bundled' and/or third-party plugin names, comma-separated.",
    ),
) -> None:
    """Run a gateway node: proxies on --proxy-listen, Admin API on --admin-listen."""
    configure_logging(log_level, access_log == "on")
    if config is not None and store is not None:
        raise typer.BadParameter("use either -c FILE (DB-less) or --store URL, not both")
    admin_address, admin_ssl = _parse_admin_listen(admin_listen)
    plan = RunPlan(
        config=config,
        store_url="sqlite://:memory:" if config is not None else store or "sqlite:///meshgate.db",
        proxy_listen=proxy_listen,
        admin_listen=admin_address,
        admin_token=admin_token,
        admin_tls=_admin_tls(admin_ssl, admin_cert, admin_key, admin_client_ca),
        migrate=not no_migrate or config is not None,
        workers=workers,
        watch=watch,
        demo_upstreams=demo_upstreams,
        options=NodeOptions(
            settings=ProxySettings(),
            log_level=log_level,
            access_log=access_log == "on",
            drain_timeout=drain_timeout,
            plugins=plugins,
        ),
    )
    mutual_tls = plan.admin_tls is not None and plan.admin_tls.requires_client_cert
    if (
        plan.admin_listen is not None
        and not _is_loopback(plan.admin_listen[0])
        and not admin_token
        and not mutual_tls
    ):
        raise typer.BadParameter(
            "the Admin API listens beyond loopback: set --admin-token (or MESHGATE_ADMIN_TOKEN) "
            "or require client certificates with --admin-client-ca"
        )
    try:
        configure_plugins(plugins)
    except ConfigError as exc:
        print_violations("--plugins", exc)
        raise typer.Exit(2) from None
    try:
        node_settings = NodeSettings.from_proxy_listen(proxy_listen)
    except ConfigError as exc:
        print_violations("--proxy-listen", exc)
        raise typer.Exit(2) from None
    node_env = NodeEnvironment()
    try:
        uvloop.run(_serve(plan, node_settings))
    finally:
        node_env.close()


def _parse_admin_listen(text: str) -> tuple[tuple[str, int] | None, bool]:
    """``HOST:PORT [ssl] [http2]`` (or ``off``) → the address and whether ``ssl`` was asked."""
    address, *flags = text.split() or [""]
    if address.lower() == "off" and not flags:
        return None, False
    host, sep, port = address.rpartition(":")
    unknown = [flag for flag in flags if flag not in ("ssl", "http2")]
    if not sep or not port.isdigit() or unknown:
        raise typer.BadParameter(f"--admin-listen {text!r} is not 'HOST:PORT [ssl]' or off")
    return (host.strip("[]") or "127.0.0.1", int(port)), "ssl" in flags


def _admin_tls(
    ssl_flag: bool, cert: Path | None, key: Path | None, client_ca: Path | None
) -> AdminTLS | None:
    if (cert is None) != (key is None):
        raise typer.BadParameter("--admin-cert and --admin-key go together")
    if cert is None or key is None:
        if ssl_flag:
            raise typer.BadParameter("'--admin-listen ... ssl' needs --admin-cert and --admin-key")
        if client_ca is not None:
            raise typer.BadParameter("--admin-client-ca needs --admin-cert and --admin-key")
        return None
    tls = AdminTLS(cert, key, client_ca)
    try:
        tls.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return tls


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(plan: RunPlan, node_settings: NodeSettings) -> None:
    store = await open_store(plan.store_url, migrate=plan.migrate)
    if not plan.migrate:
        waiting = pending(await migration_status(store))
        if waiting:
            typer.echo(
                f"{plan.store_url}: {len(waiting)} pending migration(s) and --no-migrate: "
                "run 'meshgate migrations up --store ...' first",
                err=True,
            )
            await store.close()
            raise typer.Exit(3)
    if plan.config is not None:
        try:
            await import_file(store, plan.config)
        except ConfigError as exc:
            print_violations(str(plan.config), exc)
            await store.close()
            raise typer.Exit(2) from None
    demo_servers: list[asyncio.Server] = []
    if plan.demo_upstreams:
        for i, port in enumerate(DEMO_UPSTREAM_PORTS):
            server, _ = await start_echo_upstream(f"demo-{i + 1}", port=port)
            demo_servers.append(server)
    proxy: Proxy = (
        InProcessProxy(plan.options)
        if plan.workers == 1
        else WorkerPool(plan.options, plan.workers)
    )
    node = GatewayNode(store, node_settings, proxy)
    try:
        await node.start()
    except ConfigError as exc:
        print_violations(plan.store_url, exc)
        raise typer.Exit(2) from None
    admin = None
    if plan.admin_listen is not None:
        app = create_admin_app(
            store,
            node_info=NodeInfo(
                database="off" if plan.config else store.dialect,
                admin_listen=(f"{plan.admin_listen[0]}:{plan.admin_listen[1]}",),
                proxy_listen=tuple(p.strip() for p in plan.proxy_listen.split(",")),
            ),
            read_only_reason=(
                f"meshgate runs DB-less from {plan.config}: edit the file (and reload with "
                "--watch or SIGHUP), or run with --store"
                if plan.config
                else None
            ),
            admin_token=plan.admin_token,
            on_change=node.on_admin_change,
        )
        admin = await serve_admin(app, *plan.admin_listen, tls=plan.admin_tls)
    assert node.snapshot is not None
    _print_banner(node.snapshot, plan, admin)

    stop = asyncio.Event()
    reload_now = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_now.set)
    reloader = spawn(_reload_loop(plan, store, node, reload_now, stop), name="file-reloader")
    # DB-less stores are rebuilt from the file; a writable store drops expired credentials
    purger = spawn(run_ttl_purge(store), name="ttl-purge") if plan.config is None else None
    await stop.wait()
    reloader.cancel()
    if purger is not None:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
    _log.info("shutting down: finishing in-flight requests")
    if admin is not None:
        await admin.stop()
    await node.stop()
    await store.close()
    for server in demo_servers:
        server.close()


async def _reload_loop(
    plan: RunPlan, store: Store, node: GatewayNode, reload_now: asyncio.Event, stop: asyncio.Event
) -> None:
    """DB-less: re-import the file on SIGHUP (or when it changes, with ``--watch``)."""
    if plan.config is None:
        await stop.wait()
        return
    path = plan.config
    mtime = _mtime(path)
    while not stop.is_set():
        try:
            await asyncio.wait_for(reload_now.wait(), 1.0 if plan.watch else None)
        except TimeoutError:
            if _mtime(path) == mtime:
                continue
        mtime = _mtime(path)
        reload_now.clear()
        try:
            revision = await import_file(store, path)
        except ConfigError as exc:
            _log.error(
                "reload of %s refused, running config kept: %s",
                path,
                "; ".join(str(v) for v in exc.violations),
            )
            continue
        if await node.wait_applied(revision):
            _log.info("%s reloaded (revision %d)", path, revision)


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _print_banner(snap: snapshot.Snapshot, plan: RunPlan, admin: AdminServer | None) -> None:
    workers = plan.workers
    lines = [f"meshgate {__version__} running ({workers} worker{'s' if workers > 1 else ''})"]
    for listener in snap.listeners:
        lines.append(f"  proxy  {listener.protocol}://{listener.address}:{listener.port}")
    if admin is not None:
        lines.append(f"  admin  {admin.scheme}://{admin.host}:{admin.port}")
    source = f"file {plan.config} (DB-less)" if plan.config else f"store {plan.store_url}"
    lines.append(
        f"  config {source}: {len(snap.services)} services, {len(snap.routes)} routes "
        f"(snapshot {snap.version})"
    )
    http = next((ln for ln in snap.listeners if ln.protocol == "http"), None)
    if http is not None:
        lines.append(f"  try    curl -i http://{http.address}:{http.port}{_sample_path(snap)}")
    if admin is not None:
        lines.append(f"         curl -s {admin.scheme}://{admin.host}:{admin.port}/services")
    typer.echo("\n".join(lines), err=True)


def _sample_path(snap: snapshot.Snapshot) -> str:
    """A path the first plain route (no hosts, no regex) answers, for the start-up hint."""
    for route in snap.routes:
        if route.hosts or (route.methods and "GET" not in route.methods):
            continue
        for path in route.paths:
            if not path.startswith("~"):
                return path
    return "/"
