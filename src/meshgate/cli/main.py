"""The ``meshgate`` command.

Each subcommand's module is imported only when that subcommand runs: a sidecar
(``meshgate dp``) then carries none of the Admin API, the events API or the table printer,
which is ~12 MB of resident memory per sidecar.  ``meshgate --help`` imports them all.
"""

from __future__ import annotations

import importlib
import sys

import typer

from meshgate import __version__

# name -> (module, attribute, is a group of subcommands)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "run": ("meshgate.cli.run_cmd", "run", False),
    "config": ("meshgate.cli.config_cmd", "config_app", True),
    "routes": ("meshgate.cli.routes_cmd", "routes_app", True),
    "events": ("meshgate.cli.events_cmd", "events_app", True),
    "cp": ("meshgate.cli.cp_cmd", "cp", False),
    "dp": ("meshgate.cli.dp_cmd", "dp", False),
    "mesh": ("meshgate.cli.mesh_cmd", "mesh_app", True),
    "migrations": ("meshgate.cli.migrations_cmd", "migrations_app", True),
    "demo": ("meshgate.cli.demo_cmd", "demo_app", True),
}


def version() -> None:
    """Print meshgate's version."""
    typer.echo(f"meshgate {__version__}")


def build_app(only: str | None = None) -> typer.Typer:
    """The command with every subcommand, or with ``only`` that one (still named)."""
    app = typer.Typer(
        name="meshgate",
        help="API gateway, service mesh and Kafka event gateway. "
        "The gateway admits. The mesh connects. Kafka streams.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    if only is not None:
        app.callback()(lambda: None)  # keeps the subcommand's name on the command line
    for name, (module, attribute, group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    if only is None or only == "version":
        app.command("version")(version)
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole command, for tests (typer's CliRunner)
        return build_app()
    raise AttributeError(name)


def main() -> None:
    first = sys.argv[1] if len(sys.argv) > 1 else None
    build_app(first if first in COMMANDS or first == "version" else None)()


if __name__ == "__main__":
    main()
