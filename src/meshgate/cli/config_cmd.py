"""``meshgate config``: validate and compile declarative files; dump, apply, diff a node or store."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from meshgate.cli.gitops import ConfigTarget, entity_map
from meshgate.cli.loading import exit_on_config_error, load_config
from meshgate.resources.declarative import dump_dict, dump_yaml, load_file

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


_ADMIN = typer.Option(
    None, "--admin", help="A running node's Admin API, e.g. http://127.0.0.1:8001."
)
_STORE = typer.Option(None, "--store", help="A config store: sqlite:///path.db or postgresql://…")
_TOKEN = typer.Option(None, "--token", envvar="MESHGATE_ADMIN_TOKEN", help="Admin API token.")


@config_app.command("dump")
def dump(
    admin: str | None = _ADMIN, store: str | None = _STORE, token: str | None = _TOKEN
) -> None:
    """Print a node's (or a store's) whole config as a Kong declarative file."""
    with exit_on_config_error(Path(admin or store or "-")):
        document = ConfigTarget(admin, store, token).dump()
    typer.echo(yaml.safe_dump(document, sort_keys=False), nl=False)


@config_app.command("apply")
def apply(
    path: Path = typer.Argument(..., help="Kong-format declarative file."),
    admin: str | None = _ADMIN,
    store: str | None = _STORE,
    token: str | None = _TOKEN,
) -> None:
    """Make a node (or a store) hold exactly FILE's config: all of it or, if invalid, none."""
    with exit_on_config_error(path):
        document = dump_dict(load_file(path))
        summary = ConfigTarget(admin, store, token).apply(document)
    typer.echo(summary)


@config_app.command("diff")
def diff(
    path: Path = typer.Argument(..., help="Kong-format declarative file."),
    admin: str | None = _ADMIN,
    store: str | None = _STORE,
    token: str | None = _TOKEN,
) -> None:
    """Show what ``apply FILE`` would change (exit 1 when something would)."""
    with exit_on_config_error(path):
        wanted = entity_map(dump_dict(load_file(path)))
        current = entity_map(ConfigTarget(admin, store, token).dump())
    changes = 0
    for key in sorted(wanted.keys() | current.keys()):
        if key not in current:
            typer.echo(f"+ create {key}")
        elif key not in wanted:
            typer.echo(f"- delete {key}")
        elif wanted[key] != current[key]:
            typer.echo(f"~ update {key}")
        else:
            continue
        changes += 1
    typer.echo(f"{changes} change(s)")
    if changes:
        raise typer.Exit(1)
