"""Read a declarative file and compile it for this node: the snapshot ``run`` and friends use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from meshgate import snapshot
from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.errors import ConfigError, Violation
from meshgate.proxy.tls.certs import generate_self_signed
from meshgate.resources import load_file

DEFAULT_PROXY_LISTEN = "127.0.0.1:8000, 127.0.0.1:8443 ssl"
DEFAULT_CERT_ID = "00000000-0000-4000-8000-00000000cafe"


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
    snap = compile_gateway(config, node)
    if any(ln.protocol == "https" for ln in snap.listeners) and not snap.certificates:
        tls_default = tls_default or generate_self_signed(["localhost", "127.0.0.1"])
        cert = snapshot.Certificate(
            id=DEFAULT_CERT_ID, cert=tls_default[0], key=tls_default[1], snis=()
        )
        listeners = tuple(
            ln.model_copy(update={"default_certificate": DEFAULT_CERT_ID})
            if ln.protocol == "https"
            else ln
            for ln in snap.listeners
        )
        snap = snap.model_copy(
            update={"certificates": (cert,), "listeners": listeners}
        ).with_version()
    return LoadedConfig(snapshot=snap, tls_default=tls_default)


@contextlib.contextmanager
def exit_on_config_error(path: Path) -> Iterator[None]:
    """Turn a ``ConfigError`` into every violation on stderr and exit status 2."""
    try:
        yield
    except ConfigError as exc:
        typer.echo(f"{path}: invalid configuration ({len(exc.violations)} problems):", err=True)
        for violation in exc.violations:
            typer.echo(f"  {violation}", err=True)
        raise typer.Exit(2) from None
