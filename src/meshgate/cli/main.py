"""The ``meshgate`` command."""

from __future__ import annotations

import typer

from meshgate import __version__
from meshgate.cli.config_cmd import config_app
from meshgate.cli.cp_cmd import cp
from meshgate.cli.dp_cmd import dp
from meshgate.cli.events_cmd import events_app
from meshgate.cli.mesh_cmd import mesh_app
from meshgate.cli.migrations_cmd import migrations_app
from meshgate.cli.routes_cmd import routes_app
from meshgate.cli.run_cmd import run

app = typer.Typer(
    name="meshgate",
    help="API gateway, service mesh and Kafka event gateway. "
    "The gateway admits. The mesh connects. Kafka streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run)
app.add_typer(config_app, name="config")
app.add_typer(routes_app, name="routes")
app.add_typer(events_app, name="events")
app.command("cp")(cp)
app.command("dp")(dp)
app.add_typer(mesh_app, name="mesh")
app.add_typer(migrations_app, name="migrations")


@app.command("version")
def version() -> None:
    """Print meshgate's version."""
    typer.echo(f"meshgate {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
