"""``meshgate demo``: demos that run on one machine with nothing else installed.

* ``demo mesh [--dir DIR] [--base-port N]`` — a control plane, three apps and their sidecars,
  with mTLS, until Ctrl-C (see ``meshgate.demo.mesh_demo`` for the ports);
* ``demo app --name NAME --port N`` — one echo app whose answers name it (what ``demo mesh``
  runs behind each sidecar).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from meshgate.demo.mesh_demo import DEFAULT_BASE_PORT, run_mesh_demo

demo_app = typer.Typer(help="Demos on this machine: a service mesh, echo apps.")


@demo_app.command("mesh")
def mesh(
    work_dir: Path | None = typer.Option(
        None,
        "--dir",
        help="Work directory for the store, logs, tokens and PIDs (default: a new temporary "
        "one); the demo's files of an earlier run in it are replaced.",
    ),
    base_port: int = typer.Option(
        DEFAULT_BASE_PORT,
        "--base-port",
        help="First of the 33 ports used on 127.0.0.1: +0 Mesh API, +1 DP server, +10..12 apps, "
        "+20..22 sidecar inbounds, +30..32 outbounds.",
    ),
) -> None:
    """Start a three-service mesh (frontend -> backend, db; backend -> db) with mTLS."""
    code = run_mesh_demo(
        work_dir,
        base_port,
        echo=lambda text: typer.echo(text),
        error=lambda text: typer.echo(text, err=True),
    )
    raise typer.Exit(code)


@demo_app.command("app")
def app(
    name: str = typer.Option(..., "--name", help="The service name every answer carries."),
    port: int = typer.Option(..., "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
) -> None:
    """Run one echo app: every answer is JSON describing the request, naming NAME."""
    import uvloop

    uvloop.run(_serve_echo(name, host, port))


async def _serve_echo(name: str, host: str, port: int) -> None:
    from meshgate.demo.upstreams import start_echo_upstream

    server, _ = await start_echo_upstream(name, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    typer.echo(f"echo app {name} on http://{host}:{port}", err=True)
    await stop.wait()
    server.close()
