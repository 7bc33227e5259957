"""Read a declarative file and compile it for this node: the snapshot ``run`` and friends use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from meshgate import snapshot
from meshgate.cli.violations import print_violations
from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.controlplane.tls_default import with_default_certificate
from meshgate.errors import ConfigError, Violation
from meshgate.resources import load_file

DEFAULT_PROXY_LISTEN = "127.0.0.1:8000, 127.0.0.1:8443 ssl"


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A compiled snapshot plus the node's generated default certificate, kept across reloads."""

    snapshot: snapshot.Snapshot
    tls_default: tuple[str, str] | None = None


def load_config(
    path: Path, proxy_listen: str = DEFAULT_PROXY_LISTEN, tls_default: tuple[str, str] | None = None
) -> LoadedConfig:
    """Load, validate and compile ``path``; raises ``ConfigError`` listing every violation.

    Like Kong, an https listener with no certificate configured for it serves a self-signed
    default certificate generated at start (``tls_default`` carries it over reloads).
    """
    try:
        config = load_file(path)
    except OSError as exc:
        raise ConfigError([Violation("", f"cannot read {path}: {exc.strerror or exc}")]) from exc
    node = NodeSettings.from_proxy_listen(proxy_listen)
    snap, tls_default = with_default_certificate(compile_gateway(config, node), tls_default)
    return LoadedConfig(snapshot=snap, tls_default=tls_default)


@contextlib.contextmanager
def exit_on_config_error(path: Path) -> Iterator[None]:
    """Turn a ``ConfigError`` into every violation on stderr and exit status 2."""
    try:
        yield
    except ConfigError as exc:
        print_violations(str(path), exc)
        raise typer.Exit(2) from None
