"""``meshgate cp``: the mesh control plane — Mesh API, DP server, CA and distribution.

One process on the shared store (SQLite file or PostgreSQL): the Mesh API on
``--api-listen`` (default 127.0.0.1:5681) and the TLS DP server sidecars connect to on
``--dp-listen`` (default 127.0.0.1:5678).  The DP server's certificate is kept in the store;
its fingerprint is printed at start (give it to ``meshgate dp --cp-fingerprint``, or let
sidecars pin it on first use), and ``--dp-ca-out FILE`` writes its root for ``--ca-cert``.

Several ``meshgate cp`` processes may share one store (PostgreSQL): each is a replica with an
``--instance-id`` (default ``<host>-<random>``) that writes a heartbeat every
``--heartbeat-interval`` and is taken for dead by the others after ``--instance-dead-after``
without one (default three intervals); sidecars may be given every replica's address
(``meshgate dp --cp URL1 --cp URL2``) and fail over between them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import typer
import uvloop

from meshgate import __version__
from meshgate.agent.logs import configure_logging
from meshgate.controlplane.admin_api import serve_admin
from meshgate.controlplane.ca import MeshCA, StoreCAStorage
from meshgate.controlplane.ca.manager import utc_now
from meshgate.controlplane.distribution import (
    DataplaneTokens,
    DistributionEngine,
    serve_distribution,
    server_tls,
)
from meshgate.controlplane.distribution.liveness import default_dead_after
from meshgate.controlplane.distribution.offline import parse_age
from meshgate.controlplane.distribution.storage import ensure_mesh
from meshgate.controlplane.mesh_api import create_mesh_app
from meshgate.store import open_store

_log = logging.getLogger("meshgate.cp")


@dataclass(frozen=True, slots=True)
class ReplicaOptions:
    instance_id: str | None
    heartbeat_interval: float
    dead_after: float


def cp(
    store: str = typer.Option(
        "sqlite:///meshgate.db",
        "--store",
        envvar="MESHGATE_STORE",
        help="Config store: sqlite:///path.db or postgresql://…",
    ),
    api_listen: str = typer.Option("127.0.0.1:5681", "--api-listen", help="Mesh API HOST:PORT."),
    dp_listen: str = typer.Option("127.0.0.1:5678", "--dp-listen", help="DP server HOST:PORT."),
    admin_token: str | None = typer.Option(
        None,
        "--admin-token",
        envvar="MESHGATE_ADMIN_TOKEN",
        help="Required on every Mesh API request; mandatory when the API listens beyond loopback.",
    ),
    dp_server_names: list[str] = typer.Option(
        [], "--dp-server-name", help="Extra host name/IP for the DP server certificate (repeat)."
    ),
    dp_ca_out: Path | None = typer.Option(
        None, "--dp-ca-out", help="Write the DP server's root certificate here (for --ca-cert)."
    ),
    default_mesh: bool = typer.Option(
        True, "--default-mesh/--no-default-mesh", help="Create the 'default' mesh if missing."
    ),
    dataplane_cleanup_age: str = typer.Option(
        "72h",
        "--dataplane-cleanup-age",
        help="Delete a Dataplane whose sidecar left without 'bye' once offline this long "
        "(90s, 30m, 72h, 3d; 0 = never).",
    ),
    dataplane_reconnect_grace: str = typer.Option(
        "5m",
        "--dataplane-reconnect-grace",
        help="After a restart, Dataplanes in the store that have not reconnected within this "
        "time are recorded offline (their control plane may have crashed).",
    ),
    instance_id: str | None = typer.Option(
        None,
        "--instance-id",
        envvar="MESHGATE_CP_INSTANCE_ID",
        help="This replica's id among the control planes on the store (default: host-random).",
    ),
    heartbeat_interval: str = typer.Option(
        "5s", "--heartbeat-interval", help="How often this replica writes its heartbeat."
    ),
    instance_dead_after: str | None = typer.Option(
        None,
        "--instance-dead-after",
        help="A replica silent this long is dead: its dataplanes count as offline from its "
        "last heartbeat (default: three heartbeat intervals).",
    ),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the mesh control plane."""
    configure_logging(log_level, access_log=False)
    replica = _replica_options(instance_id, heartbeat_interval, instance_dead_after)
    try:
        cleanup_age = parse_age(dataplane_cleanup_age)
    except ValueError:
        raise typer.BadParameter(
            f"--dataplane-cleanup-age {dataplane_cleanup_age!r} is not a duration"
        ) from None
    try:
        reconnect_grace = parse_age(dataplane_reconnect_grace) or 0.0
    except ValueError:
        raise typer.BadParameter(
            f"--dataplane-reconnect-grace {dataplane_reconnect_grace!r} is not a duration"
        ) from None
    api = _host_port(api_listen, "--api-listen")
    dp = _host_port(dp_listen, "--dp-listen")
    if not _is_loopback(api[0]) and not admin_token:
        raise typer.BadParameter("the Mesh API listens beyond loopback: set --admin-token")
    uvloop.run(
        _serve(
            store, api, dp, admin_token, tuple(dp_server_names), dp_ca_out, default_mesh,
            cleanup_age, reconnect_grace, replica,
        )
    )  # fmt: skip


async def _serve(
    store_url: str,
    api: tuple[str, int],
    dp: tuple[str, int],
    admin_token: str | None,
    dp_server_names: tuple[str, ...],
    dp_ca_out: Path | None,
    default_mesh: bool,
    cleanup_age: float | None,
    reconnect_grace: float,
    replica: ReplicaOptions,
) -> None:
    store = await open_store(store_url)
    if default_mesh:
        await ensure_mesh(store, "default")
    tokens = DataplaneTokens(store)
    engine = DistributionEngine(
        store,
        ca=MeshCA(StoreCAStorage(store)),
        tokens=tokens,
        offline_cleanup_age=cleanup_age,
        reconnect_grace=reconnect_grace,
        instance_id=replica.instance_id,
        heartbeat_interval=replica.heartbeat_interval,
        dead_after=replica.dead_after,
    )
    await engine.start()
    tls = await server_tls(store, now=utc_now(), extra_names=dp_server_names)
    if dp_ca_out is not None:
        await asyncio.to_thread(dp_ca_out.write_text, tls.ca_cert)
    dp_server = await serve_distribution(engine, tls, *dp)
    api_server = await serve_admin(
        create_mesh_app(store, engine, tokens, admin_token=admin_token), *api
    )
    engine.replicas.address = f"https://{dp[0]}:{dp_server.port}"
    engine.replicas.api = f"http://{api[0]}:{api_server.port}"
    await engine.replicas.beat()  # the others see where this replica listens
    typer.echo(
        "\n".join(
            [
                f"meshgate {__version__} control plane",
                f"  mesh api  http://{api[0]}:{api_server.port}",
                f"  dp server https://{dp[0]}:{dp_server.port}",
                f"  dp server certificate {tls.fingerprint}",
                f"  store     {store_url}",
                f"  instance  {engine.replicas.instance_id}",
            ]
        ),
        err=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    _log.info("control plane stopping")
    await api_server.stop()
    await dp_server.stop()
    await engine.stop()
    await store.close()


def _replica_options(
    instance_id: str | None, heartbeat_interval: str, dead_after: str | None
) -> ReplicaOptions:
    try:
        interval = parse_age(heartbeat_interval)
    except ValueError:
        interval = None
    if interval is None:
        raise typer.BadParameter(f"--heartbeat-interval {heartbeat_interval!r} is not a duration")
    limit = default_dead_after(interval)
    if dead_after is not None:
        try:
            limit = parse_age(dead_after) or 0.0
        except ValueError:
            limit = 0.0
        if limit <= interval:
            raise typer.BadParameter(
                f"--instance-dead-after {dead_after!r} must be a duration longer than "
                "--heartbeat-interval"
            )
    return ReplicaOptions(instance_id or None, interval, limit)


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise typer.BadParameter(f"{option} {text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
