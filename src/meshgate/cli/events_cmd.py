"""``meshgate events``: the event gateway's routes, described."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from meshgate.cli.loading import exit_on_config_error, load_config
from meshgate.events.http_api.asyncapi import asyncapi_document

events_app = typer.Typer(help="The Kafka event gateway.", no_args_is_help=True)


@events_app.command("asyncapi")
def asyncapi(
    config: Path = typer.Option(..., "-c", "--config", help="Kong-format declarative file."),
) -> None:
    """Print the AsyncAPI 3 document of the file's event routes (kafka-* plugins)."""
    with exit_on_config_error(config):
        loaded = load_config(config)
    typer.echo(json.dumps(asyncapi_document(loaded.snapshot), indent=2))
