"""How a command reports an invalid configuration: every violation with its field path."""

from __future__ import annotations

import typer

from meshgate.errors import ConfigError


def print_violations(source: str, exc: ConfigError) -> None:
    """Every violation of ``exc``, one per line with its field path, on stderr."""
    typer.echo(f"{source}: invalid configuration ({len(exc.violations)} problems):", err=True)
    for violation in exc.violations:
        typer.echo(f"  {violation}", err=True)
