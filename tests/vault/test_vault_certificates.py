"""Certificates whose ``cert``/``key`` are vault references (Kong's referenceable fields): the
Admin API stores and shows the reference, the compiler resolves it and validates the PEM (an
unresolvable reference or bad PEM refuses the config with the field path, the running
snapshot stays), and an https listener serves the resolved certificate."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshgate.compiler import NodeSettings
from meshgate.controlplane.admin_api import NodeInfo, create_admin_app
from meshgate.controlplane.gateway_node import GatewayNode
from meshgate.proxy.tls.certs import generate_self_signed
from meshgate.store import open_store
from testkit import Gateway, RecordingProxy, free_port, wait_for_port

CERT_REF = "{vault://env/mg-vault-cert}"
KEY_REF = "{vault://env/mg-vault-key}"
NODE = NodeSettings.from_proxy_listen("127.0.0.1:8000")


def make_pair(host: str) -> tuple[str, str]:
    """A self-signed certificate for ``host`` and its key, PEM."""
    return generate_self_signed([host])


@pytest.fixture(scope="module")
def pair() -> tuple[str, str]:
    return make_pair("vault.test")


async def _with_node(tmp_path: Path, scenario: Any) -> None:
    """Run ``scenario(client, node)``: an Admin API client whose writes the node applies."""
    store = await open_store(f"sqlite:///{tmp_path / 'vault.db'}")
    node = GatewayNode(store, NODE, RecordingProxy())
    await node.start()
    info = NodeInfo(node_id="9d1f4b6e-0000-4000-8000-000000000002", hostname="vault-test")

    async def apply_now(revision: int) -> None:  # a refusal answers at once, no waiting
        await node.sync()

    app = create_admin_app(store, node_info=info, on_change=apply_now)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            await scenario(client, node)
    finally:
        await node.stop()
        await store.close()


def test_admin_api_accepts_and_keeps_references(
    tmp_path: Path, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_pem, key_pem = pair
    monkeypatch.setenv("MG_VAULT_CERT", cert_pem)
    monkeypatch.setenv("MG_VAULT_KEY", key_pem)

    async def scenario(client: httpx.AsyncClient, node: GatewayNode) -> None:
        created = await client.post("/certificates", json={"cert": CERT_REF, "key": KEY_REF})
        assert created.status_code == 201, created.text
        shown = (await client.get(f"/certificates/{created.json()['id']}")).json()
        assert (shown["cert"], shown["key"]) == (CERT_REF, KEY_REF)  # the store keeps them
        mixed = await client.post("/certificates", json={"cert": cert_pem, "key": KEY_REF})
        assert mixed.status_code == 201, mixed.text
        bad = await client.post("/certificates", json={"cert": "not a pem", "key": KEY_REF})
        assert bad.status_code == 400
        assert set(bad.json()["fields"]) == {"cert"}  # the reference itself is not judged

        assert node.snapshot is not None
        compiled = {c.id: c for c in node.snapshot.certificates}
        assert compiled[created.json()["id"]].cert == cert_pem  # resolved in the snapshot
        assert compiled[created.json()["id"]].key == key_pem
        assert compiled[mixed.json()["id"]].key == key_pem

    asyncio.run(_with_node(tmp_path, scenario))


def test_a_declarative_file_may_reference_certificates(
    tmp_path: Path, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_pem, key_pem = pair
    monkeypatch.setenv("MG_VAULT_CERT", cert_pem)
    monkeypatch.setenv("MG_VAULT_KEY", key_pem)
    document = {
        "_format_version": "3.0",
        "certificates": [{"cert": CERT_REF, "key": KEY_REF, "snis": [{"name": "vault.test"}]}],
    }

    async def scenario(client: httpx.AsyncClient, node: GatewayNode) -> None:
        loaded = await client.post("/config", json=document)
        assert loaded.status_code == 201, loaded.text
        (stored,) = loaded.json()["certificates"].values()
        assert (stored["cert"], stored["key"]) == (CERT_REF, KEY_REF)
        assert node.snapshot is not None
        (compiled,) = node.snapshot.certificates
        assert (compiled.cert, compiled.key, compiled.snis) == (cert_pem, key_pem, ("vault.test",))

    asyncio.run(_with_node(tmp_path, scenario))


@pytest.mark.parametrize(
    ("cert_env", "key_env", "field", "message"),
    [
        ("good", None, "key", "environment variable MG_VAULT_KEY is not set"),
        ("garbage", "good", "cert", "invalid certificate"),
        ("good", "other", "key", "'cert' does not match 'key'"),
    ],
)
def test_a_bad_reference_refuses_the_config_and_keeps_the_running_one(
    tmp_path: Path,
    pair: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    cert_env: str,
    key_env: str | None,
    field: str,
    message: str,
) -> None:
    cert_pem, key_pem = pair
    garbage = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    monkeypatch.setenv("MG_VAULT_CERT", cert_pem if cert_env == "good" else garbage)
    if key_env is None:
        monkeypatch.delenv("MG_VAULT_KEY", raising=False)
    else:
        other_key = make_pair("other.test")[1]
        monkeypatch.setenv("MG_VAULT_KEY", key_pem if key_env == "good" else other_key)

    async def scenario(client: httpx.AsyncClient, node: GatewayNode) -> None:
        before = node.snapshot
        assert before is not None
        created = await client.post("/certificates", json={"cert": CERT_REF, "key": KEY_REF})
        assert created.status_code == 201, created.text  # stored; the compile refuses it
        assert node.snapshot is before
        assert node.last_error is not None
        assert f"certificates.{created.json()['id']}.{field}: " in node.last_error
        assert message in node.last_error

    asyncio.run(_with_node(tmp_path, scenario))


def _admin(port: int, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _served_certificate(port: int, server_name: str) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_an_https_listener_serves_the_resolved_certificate(
    tmp_path: Path, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_pem, key_pem = pair
    monkeypatch.setenv("MG_VAULT_CERT", cert_pem)
    monkeypatch.setenv("MG_VAULT_KEY", key_pem)
    http_port, https_port = free_port(), free_port()
    listen = f"127.0.0.1:{http_port}, 127.0.0.1:{https_port} ssl"
    gw = Gateway(
        None, http_port, "--store", f"sqlite:///{tmp_path}/gw.db", "--proxy-listen", listen
    )
    try:
        wait_for_port(https_port, proc=gw.proc)
        body = {"cert": CERT_REF, "key": KEY_REF, "snis": ["vault.test"]}
        status, created = _admin(gw.admin_port, "POST", "/certificates", body)
        assert status == 201, created
        assert created["cert"] == CERT_REF
        expected = ssl.PEM_cert_to_DER_cert(cert_pem)
        assert _served_certificate(https_port, "vault.test") == expected
    finally:
        gw.stop()
