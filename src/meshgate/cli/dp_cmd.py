"""``meshgate dp --role sidecar``: a sidecar that runs the snapshots a control plane pushes.

The Dataplane comes from ``--dataplane FILE.yaml`` (Kuma's Universal shape) or from flags:
``--name``, ``--mesh``, ``--address``, ``--inbound SERVICE:PORT:PROTOCOL[:SERVICE_PORT]``
(the sidecar listens on ``address:PORT`` and forwards to the app on
``127.0.0.1:SERVICE_PORT``, default ``PORT``), ``--outbound SERVICE:PORT`` (the app calls
``127.0.0.1:PORT``).  State (key, last good snapshot, pinned CP) lives in ``--state-dir``.

This command checks all that, makes the key and CSR, then execs the serving process
(``meshgate.agent.dataplane.launch``), which carries none of the command line's modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
import yaml

from meshgate.agent.dataplane.client import AgentConfig
from meshgate.agent.dataplane.launch import Launch, exec_sidecar
from meshgate.agent.dataplane.state import StateDir
from meshgate.agent.logs import configure_logging
from meshgate.cli.violations import print_violations
from meshgate.errors import ConfigError, Violation
from meshgate.policies import parse_resource
from meshgate.resources.mesh.base import PROTOCOL_TAG, SERVICE_TAG
from meshgate.resources.mesh.dataplane import Dataplane


def dp(
    cp_urls: list[str] = typer.Option(
        ["https://127.0.0.1:5678"],
        "--cp",
        help="The CP's DP server URL; repeat it (or separate URLs by commas) to give every "
        "control-plane replica: the sidecar fails over to the next one.",
    ),
    token: Path = typer.Option(..., "--token", help="File holding the dataplane token."),
    role: str = typer.Option("sidecar", "--role", help="sidecar (gateway: not yet)."),
    dataplane_file: Path | None = typer.Option(None, "--dataplane", help="Dataplane YAML file."),
    name: str | None = typer.Option(None, "--name"),
    mesh: str = typer.Option("default", "--mesh"),
    address: str = typer.Option("127.0.0.1", "--address"),
    inbound: list[str] = typer.Option([], "--inbound", help="SERVICE:PORT:PROTOCOL[:APP_PORT]"),
    outbound: list[str] = typer.Option([], "--outbound", help="SERVICE:PORT"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Default .meshgate-dp/<name>"),
    ca_cert: Path | None = typer.Option(None, "--ca-cert", help="Verify the CP with this root."),
    cp_fingerprint: str | None = typer.Option(
        None, "--cp-fingerprint", help="Pin the CP certificate (sha256:<hex>); default: TOFU."
    ),
    log_level: str = typer.Option("info", "--log-level"),
    access_log: str = typer.Option("off", "--access-log"),
    drain_timeout: float = typer.Option(5.0, "--drain-timeout"),
) -> None:
    """Run a data plane proxy connected to a control plane."""
    configure_logging(log_level, access_log == "on")
    if role != "sidecar":
        raise typer.BadParameter("only --role sidecar is supported so far", param_hint="--role")
    try:
        document = _dataplane_document(dataplane_file, name, mesh, address, inbound, outbound)
    except ConfigError as exc:
        print_violations(str(dataplane_file or "dataplane flags"), exc)
        raise typer.Exit(2) from None
    addresses = _cp_addresses(cp_urls)
    config = AgentConfig(
        cp_host=addresses[0][0],
        cp_port=addresses[0][1],
        cp_fallbacks=[f"[{host}]:{port}" for host, port in addresses[1:]],
        token_file=token,
        dataplane=document,
        state_dir=state_dir or Path(".meshgate-dp") / f"{document['mesh']}-{document['name']}",
        ca_file=ca_cert,
        fingerprint=cp_fingerprint,
    )
    try:
        StateDir(config.state_dir).csr(str(document["name"]))  # key and CSR, made here once
    except OSError as exc:
        typer.echo(f"cannot prepare the state directory {config.state_dir}: {exc}", err=True)
        raise typer.Exit(2) from None
    launch = Launch(
        config, log_level=log_level, access_log=access_log == "on", drain_timeout=drain_timeout
    )
    exec_sidecar(launch)  # the serving process replaces this one: see agent.dataplane.launch


def _cp_addresses(urls: list[str]) -> list[tuple[str, int]]:
    """(host, port) of every ``--cp`` URL, in order (commas separate URLs too)."""
    found: list[tuple[str, int]] = []
    for url in (part.strip() for text in urls for part in text.split(",")):
        if not url:
            continue
        try:
            parts = urlsplit(url)
            port = parts.port or 5678
        except ValueError:
            parts, port = urlsplit(""), 0
        if parts.scheme != "https" or parts.hostname is None or not port:
            raise typer.BadParameter(f"{url!r} is not https://HOST:PORT", param_hint="--cp")
        if (parts.hostname, port) not in found:
            found.append((parts.hostname, port))
    if not found:
        raise typer.BadParameter("give at least one control plane URL", param_hint="--cp")
    return found


def _dataplane_document(
    path: Path | None,
    name: str | None,
    mesh: str,
    address: str,
    inbound: list[str],
    outbound: list[str],
) -> dict[str, Any]:
    """The Dataplane resource to register, validated (``ConfigError`` otherwise)."""
    if path is not None:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([Violation("", f"cannot read {path}: {exc}")]) from None
    else:
        if name is None:
            raise ConfigError([Violation("name", "--name (or --dataplane FILE) is required")])
        doc = {
            "type": "Dataplane",
            "name": name,
            "mesh": mesh,
            "networking": {
                "address": address,
                "inbound": [_inbound(text, i) for i, text in enumerate(inbound)],
                "outbound": [_outbound(text, i) for i, text in enumerate(outbound)],
            },
        }
    resource = parse_resource(doc)
    if not isinstance(resource, Dataplane):
        raise ConfigError([Violation("type", "expected a Dataplane")])
    result: dict[str, Any] = resource.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return {**result, "type": "Dataplane", "name": resource.name, "mesh": resource.mesh}


def _inbound(text: str, index: int) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[1:2] + parts[3:]):
        raise ConfigError(
            [Violation(f"--inbound[{index}]", "expected SERVICE:PORT:PROTOCOL[:APP_PORT]")]
        )
    item: dict[str, Any] = {
        "port": int(parts[1]),
        "tags": {SERVICE_TAG: parts[0], PROTOCOL_TAG: parts[2]},
    }
    if len(parts) == 4:
        item["servicePort"] = int(parts[3])
    return item


def _outbound(text: str, index: int) -> dict[str, Any]:
    service, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError([Violation(f"--outbound[{index}]", "expected SERVICE:PORT")])
    return {"port": int(port), "tags": {SERVICE_TAG: service}}
