"""``meshgate migrations up|status``: apply or list the config store's schema migrations.

``status`` never changes the database: it prints every known migration (and any applied one
this meshgate does not know, from a newer release) and exits 0 when the schema is up to date,
``EXIT_PENDING`` (3) when migrations are pending.  ``up`` applies the pending ones (each in its
own transaction, under a lock, so several nodes may run it at once) and prints what it did.
A store that cannot be opened exits 1 with the reason.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from meshgate.store import Store, migrate_up, migration_status, open_store
from meshgate.store.migrations import MigrationState, pending

EXIT_PENDING = 3
EXIT_STORE_ERROR = 1

migrations_app = typer.Typer(
    help="Config store schema migrations (meshgate run applies them on start).",
    no_args_is_help=True,
)

STORE_OPTION = typer.Option(
    "sqlite:///meshgate.db",
    "--store",
    envvar="MESHGATE_STORE",
    help="Config store: sqlite:///path.db or postgresql://…",
)


@migrations_app.command("status")
def status(store: str = STORE_OPTION) -> None:
    """List applied and pending migrations; exit 3 when some are pending."""
    states = uvloop.run(_with_store(store, migration_status))
    Console().print(_table(states, title=f"migrations of {_redacted(store)}"))
    waiting = pending(states)
    if waiting:
        typer.echo(
            f"{len(waiting)} pending migration(s): run 'meshgate migrations up --store ...'",
            err=True,
        )
        raise typer.Exit(EXIT_PENDING)
    typer.echo("schema is up to date", err=True)


@migrations_app.command("up")
def up(store: str = STORE_OPTION) -> None:
    """Apply every pending migration."""
    applied = uvloop.run(_with_store(store, migrate_up))
    if applied:
        Console().print(_table(applied, title="applied now"))
    typer.echo(
        f"applied {len(applied)} migration(s); schema is up to date"
        if applied
        else "nothing to apply; schema is up to date",
        err=True,
    )


async def _with_store(
    url: str, action: Callable[[Store], Awaitable[list[MigrationState]]]
) -> list[MigrationState]:
    try:
        store = await open_store(url, migrate=False)
    except Exception as exc:  # bad URL, unreachable server, unreadable file: one line, exit 1
        typer.echo(f"cannot open store {_redacted(url)}: {exc}", err=True)
        raise typer.Exit(EXIT_STORE_ERROR) from None
    try:
        return await action(store)
    finally:
        await store.close()


def _table(states: list[MigrationState], title: str) -> Table:
    table = Table(title=title)
    table.add_column("version", justify="right")
    table.add_column("name")
    table.add_column("state")
    table.add_column("applied at (UTC)")
    for state in states:
        when = (
            datetime.datetime.fromtimestamp(state.applied_at, datetime.UTC).strftime(
                "%Y-%m-%d %H:%M:%S"
            )
            if state.applied_at
            else ""
        )
        table.add_row(
            str(state.version), state.name, "applied" if state.applied else "pending", when
        )
    return table


def _redacted(url: str) -> str:
    """The URL without a password (``postgresql://user:secret@host`` → ``user:***@host``)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"
