"""``meshgate config``: validate, compile and normalise declarative files offline."""

from __future__ import annotations

from pathlib import Path

import typer

from meshgate.cli.loading import exit_on_config_error, load_config
from meshgate.resources.declarative import dump_yaml, load_file

config_app = typer.Typer(help="Work with declarative configuration files.", no_args_is_help=True)


@config_app.command("validate")
def validate(path: Path = typer.Argument(..., help="Kong-format declarative file.")) -> None:
    """Check a file; print every violation with its field path (exit 2 when invalid)."""
    with exit_on_config_error(path):
        loaded = load_config(path)
    snap = loaded.snapshot
    typer.echo(
        f"{path}: valid — {len(snap.services)} services, {len(snap.routes)} routes, "
        f"{len(snap.clusters)} clusters, {len(snap.plugins)} plugins, "
        f"{len(snap.consumers)} consumers"
    )


@config_app.command("snapshot")
def show_snapshot(path: Path = typer.Argument(..., help="Kong-format declarative file.")) -> None:
    """Print the compiled snapshot (JSON) a proxy would run for this file."""
    with exit_on_config_error(path):
        loaded = load_config(path)
    typer.echo(loaded.snapshot.model_dump_json(indent=2))


@config_app.command("normalize")
def normalize(path: Path = typer.Argument(..., help="Kong-format declarative file.")) -> None:
    """Print the file back as meshgate reads it: defaults filled in, ids assigned."""
    with exit_on_config_error(path):
        config = load_file(path)
    typer.echo(dump_yaml(config), nl=False)
