"""``meshgate mesh``: apply, get and inspect mesh resources through a control plane's Mesh API.

* ``apply -f FILE`` — every document of a multi-document YAML (or JSON) file is PUT in order
  (meshes first); violations are printed with their field paths;
* ``get KIND [NAME]`` — ``meshes``, ``dataplanes`` or any policy collection (singular or
  Kuma type names work too: ``meshtimeout``, ``MeshTimeout``), as a table or ``-o json|yaml``;
* ``inspect dataplane NAME [--rules] [--config]`` — connection, versions, certificate; the
  merged policy rules; the effective snapshot;
* ``token dataplane --name N [--tag k=v]`` — issue a dataplane token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meshgate.controlplane.distribution.storage import KINDS, collection_of
from meshgate.errors import ConfigError
from meshgate.resources.mesh.documents import split_documents

mesh_app = typer.Typer(help="Mesh resources through a control plane's Mesh API.")
inspect_app = typer.Typer(help="Inspect what the control plane knows.")
token_app = typer.Typer(help="Issue tokens.")
mesh_app.add_typer(inspect_app, name="inspect")
mesh_app.add_typer(token_app, name="token")

CP_ADMIN = typer.Option("http://127.0.0.1:5681", "--cp-admin", envvar="MESHGATE_CP_ADMIN")
TOKEN = typer.Option(None, "--admin-token", envvar="MESHGATE_ADMIN_TOKEN")
MESH = typer.Option("default", "--mesh", "-m")


class Client:
    def __init__(self, base: str, token: str | None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base.rstrip("/"), headers=headers, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            typer.echo(f"cannot reach the Mesh API at {self.http.base_url}: {exc}", err=True)
            raise typer.Exit(1) from None

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.call(method, path, body)
        if response.status_code >= 400:
            _print_error(f"{method} {path}", response)
            raise typer.Exit(1)
        return (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else response.text
        )


def _print_error(what: str, response: httpx.Response) -> None:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    typer.echo(f"{what}: {response.status_code} {body.get('detail', '')}", err=True)
    for item in body.get("invalid_parameters", []):
        typer.echo(f"  {item['field']}: {item['reason']}", err=True)


def _collection(kind: str) -> str:
    lowered = kind.lower()
    for candidate in (lowered, collection_of(kind)):
        if candidate in KINDS or candidate == "meshes":
            return candidate
    if lowered in ("mesh", "dataplane"):
        return collection_of(kind)
    names = ", ".join(["meshes", *sorted(KINDS)])
    raise typer.BadParameter(f"unknown kind {kind!r}; one of {names}", param_hint="KIND")


@mesh_app.command("apply")
def apply(
    file: Path = typer.Option(..., "-f", "--file", help="YAML (multi-document) or JSON file."),
    cp_admin: str = CP_ADMIN,
    admin_token: str | None = TOKEN,
) -> None:
    """Create or update every resource of FILE."""
    try:
        docs = split_documents(file.read_text(), "json" if file.suffix == ".json" else "yaml")
    except (OSError, ConfigError) as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(2) from None
    client = Client(cp_admin, admin_token)
    ordered = sorted(enumerate(docs), key=lambda item: _kind_of(item[1]) != "Mesh")
    failed = 0
    for index, doc in ordered:
        kind, name = _kind_of(doc), doc.get("name") if isinstance(doc, dict) else None
        if not kind or not isinstance(name, str):
            typer.echo(f"[{index}]: a document needs 'type' and 'name'", err=True)
            failed += 1
            continue
        if kind == "Mesh":
            path = f"/meshes/{name}"
        else:
            path = f"/meshes/{doc.get('mesh', 'default')}/{collection_of(kind)}/{name}"
        response = client.call("PUT", path, doc)
        if response.status_code >= 400:
            _print_error(f"[{index}] {kind} {name}", response)
            failed += 1
        else:
            verb = "created" if response.status_code == 201 else "configured"
            typer.echo(f"{kind} {name} {verb}")
    if failed:
        raise typer.Exit(1)


def _kind_of(doc: Any) -> str:
    return str(doc.get("type", "")) if isinstance(doc, dict) else ""


@mesh_app.command("get")
def get(
    kind: str = typer.Argument(..., help="meshes, dataplanes, meshtimeouts, …"),
    name: str | None = typer.Argument(None),
    mesh: str = MESH,
    output: str = typer.Option("table", "-o", "--output", help="table, json or yaml"),
    cp_admin: str = CP_ADMIN,
    admin_token: str | None = TOKEN,
) -> None:
    """List resources of KIND, or show one."""
    collection = _collection(kind)
    client = Client(cp_admin, admin_token)
    base = "/meshes" if collection == "meshes" else f"/meshes/{mesh}/{collection}"
    if name is not None:
        items = [client.ok("GET", f"{base}/{name}")]
    else:
        items, path = [], f"{base}?size=1000"
        while path:
            page = client.ok("GET", path)
            items += page["items"]
            path = page["next"]
    if output != "table":
        data: Any = items[0] if name is not None else items
        text = json.dumps(data, indent=2) if output == "json" else yaml.safe_dump(data)
        typer.echo(text.rstrip("\n"))
        return
    states = _dataplane_states(client, mesh) if collection == "dataplanes" else {}
    table = Table("MESH", "NAME", "TYPE", "DETAILS", *(["STATUS"] if states else []))
    for item in items:
        # escaped: "[svc:port]" would otherwise be read as rich markup and vanish
        row = [item.get("mesh", item["name"]), item["name"], item["type"], escape(_details(item))]
        if states:
            row.append(states.get(item["name"], "-"))
        table.add_row(*row)
    Console().print(table)


def _dataplane_states(client: Client, mesh: str) -> dict[str, str]:
    """Dataplane name -> "online (cp)" / "offline", from ``dataplanes+insights``."""
    states: dict[str, str] = {}
    path: str | None = f"/meshes/{mesh}/dataplanes+insights?size=1000"
    while path:
        page = client.ok("GET", path)
        for item in page["items"]:
            status = item["status"]
            where = f" ({status['controlPlane']})" if status.get("controlPlane") else ""
            states[item["dataplane"]["name"]] = f"{status['state']}{where}"
        path = page["next"]
    return states


def _details(item: dict[str, Any]) -> str:
    if item["type"] == "Dataplane":
        networking = item.get("networking", {})
        inbound = ", ".join(
            f"{i['tags'].get('kuma.io/service')}:{i['port']}" for i in networking.get("inbound", [])
        )
        return f"{networking.get('address')} inbound [{inbound}]"
    if item["type"] == "Mesh":
        mtls = item.get("mtls") or {}
        return f"mtls {mtls.get('enabledBackend') or 'off'}"
    target = (item.get("spec") or {}).get("targetRef") or {"kind": "Mesh"}
    return f"targetRef {target.get('kind')} {target.get('name', '')}".rstrip()


@inspect_app.command("dataplane")
def inspect_dataplane(
    name: str,
    mesh: str = MESH,
    rules: bool = typer.Option(False, "--rules", help="Show the merged policy rules."),
    config: bool = typer.Option(False, "--config", help="Show the effective snapshot (JSON)."),
    cp_admin: str = CP_ADMIN,
    admin_token: str | None = TOKEN,
) -> None:
    """A dataplane's connection, versions and certificate (and rules/config)."""
    client = Client(cp_admin, admin_token)
    base = f"/meshes/{mesh}/dataplanes/{name}"
    overview = client.ok("GET", f"{base}/_overview")
    status = overview["status"]
    table = Table("FIELD", "VALUE", title=f"dataplane {mesh}/{name}")
    table.add_row("connected", str(status["connected"]))
    table.add_row("control plane", str(status.get("controlPlane") or "-"))
    table.add_row("last pushed version", str(status["lastPushedVersion"]))
    table.add_row("last ACKed version", str(status["lastAckedVersion"]))
    nack = status.get("lastNack")
    table.add_row("last NACK", escape(f"{nack['version']}: {nack['error']}") if nack else "-")
    cert = status.get("certificate")
    table.add_row("certificate expires", cert["expiration"] if cert else "-")
    table.add_row("cert regenerations", str(cert["regenerations"]) if cert else "-")
    console = Console()
    console.print(table)
    if rules:
        view = client.ok("GET", f"{base}/_rules")
        policies = Table("TYPE", "NAME", "TARGETREF", title="policies")
        for item in view["policies"]:
            policies.add_row(item["type"], item["name"], str(item["targetRef"]))
        console.print(policies)
        console.print_json(
            json.dumps({k: view[k] for k in ("to", "from", "permissions", "routes")})
        )
    if config:
        console.print_json(json.dumps(client.ok("GET", f"{base}/_config")))


@token_app.command("dataplane")
def token_dataplane(
    name: str | None = typer.Option(None, "--name", help="Dataplane name the token admits."),
    mesh: str = MESH,
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE every inbound must carry."),
    valid_for: int | None = typer.Option(None, "--valid-for", help="Seconds."),
    cp_admin: str = CP_ADMIN,
    admin_token: str | None = TOKEN,
) -> None:
    """Print a new dataplane token."""
    tags = dict(item.split("=", 1) for item in tag if "=" in item)
    body: dict[str, Any] = {"mesh": mesh, "tags": tags}
    if name is not None:
        body["name"] = name
    if valid_for is not None:
        body["validFor"] = valid_for
    typer.echo(Client(cp_admin, admin_token).ok("POST", "/tokens/dataplane", body))
