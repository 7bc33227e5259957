"""``meshgate routes``: which route a request would take, and why the others would not."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from meshgate.cli.loading import exit_on_config_error, load_config
from meshgate.proxy.router import Explanation, Router

routes_app = typer.Typer(help="Inspect routing.", no_args_is_help=True)


def parse_header_options(values: list[str]) -> dict[str, str]:
    """``-H 'Name: value'`` options as the router sees headers: lower-case names, joined values."""
    headers: dict[str, str] = {}
    for raw in values:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter(f"header {raw!r} is not 'Name: value'")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def explain_request(
    router: Router[object], method: str, url: str, headers: dict[str, str], sni: str | None
) -> list[Explanation]:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise typer.BadParameter(f"URL {url!r} must be absolute, e.g. http://host/path")
    host = headers.get("host", parts.netloc)
    if sni is None and parts.scheme == "https":
        sni = parts.hostname
    return router.explain(method, host, parts.path or "/", headers, sni)


@routes_app.command("explain")
def explain(
    method: str = typer.Argument(..., help="HTTP method, e.g. GET."),
    url: str = typer.Argument(..., help="Absolute URL, e.g. http://api.example.com/v1/users."),
    config: Path = typer.Option(..., "-c", "--config", help="Kong-format declarative file."),
    header: list[str] = typer.Option([], "-H", "--header", help="'Name: value' (repeatable)."),
    sni: str | None = typer.Option(None, "--sni", help="TLS SNI (default: the https URL's host)."),
) -> None:
    """Print every route in priority order: the one that matches, and why the others don't."""
    with exit_on_config_error(config):
        loaded = load_config(config)
    entries = [(route, route.id) for route in loaded.snapshot.routes]
    router: Router[object] = Router.build(entries)
    rows = explain_request(router, method, url, parse_header_options(header), sni)
    table = Table(title=f"{method.upper()} {url}")
    for column in ("#", "route", "path", "priority", "result"):
        table.add_column(column)
    for row in rows:
        result = "[bold green]MATCH[/]" if row.selected else row.reason
        table.add_row(
            "-" if row.rank is None else str(row.rank),
            row.route.name or row.route.id,
            row.path or "",
            row.priority,
            result,
        )
    Console().print(table)
    if not any(row.selected for row in rows):
        typer.echo("no route matches: the gateway answers 404")
        raise typer.Exit(1)
