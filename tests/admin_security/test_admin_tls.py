"""The Admin API over HTTPS and mutual TLS (real handshakes on 127.0.0.1), and ``meshgate run``'s
rule: beyond loopback the Admin API needs an admin token or a client CA."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgate.cli.main import app
from meshgate.controlplane.admin_api import AdminTLS, NodeInfo, create_admin_app, serve_admin
from meshgate.proxy.tls.certs import CertificateAuthority, generate_ca, issue
from meshgate.store import open_store
from testkit import MESHGATE, BackgroundLoop, free_port, wait_for_port


@dataclass
class Pki:
    ca: CertificateAuthority
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = generate_ca("admin test CA")
    server_cert, server_key = issue(ca, ["localhost", "127.0.0.1"])
    client_cert, client_key = issue(ca, ["admin-client"])
    rogue_cert, rogue_key = issue(generate_ca("rogue CA"), ["rogue-client"])
    return Pki(
        ca=ca,
        ca_file=_write(d / "ca.pem", ca.cert),
        server_cert=_write(d / "server.pem", server_cert),
        server_key=_write(d / "server.key", server_key),
        client_cert=_write(d / "client.pem", client_cert),
        client_key=_write(d / "client.key", client_key),
        rogue_cert=_write(d / "rogue.pem", rogue_cert),
        rogue_key=_write(d / "rogue.key", rogue_key),
    )


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture
def serve(background_loop: BackgroundLoop) -> Iterator[Callable[[AdminTLS], int]]:
    servers = []

    def start(tls: AdminTLS) -> int:
        async def go() -> int:
            store = await open_store("sqlite://:memory:")
            admin_app = create_admin_app(store, node_info=NodeInfo())
            server = await serve_admin(admin_app, "127.0.0.1", 0, tls=tls)
            servers.append((server, store))
            assert server.scheme == "https"
            return server.port

        port: int = background_loop.run(go())
        return port

    yield start

    async def stop_all() -> None:
        for server, store in servers:
            await server.stop()
            await store.close()

    background_loop.run(stop_all())


def test_https_admin_api_serves_tls_and_not_plain_http(
    pki: Pki, serve: Callable[[AdminTLS], int]
) -> None:
    port = serve(AdminTLS(pki.server_cert, pki.server_key))
    status, body = https_get(port, client_context(pki))
    assert status == 200
    assert "version" in json.loads(body)
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        plain.request("GET", "/")
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.getresponse()  # the TLS server drops a plain-HTTP client
    finally:
        plain.close()


def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    pki: Pki, serve: Callable[[AdminTLS], int]
) -> None:
    port = serve(AdminTLS(pki.server_cert, pki.server_key, pki.ca_file))
    status, _ = https_get(port, client_context(pki, pki.client_cert, pki.client_key))
    assert status == 200
    for context in (client_context(pki), client_context(pki, pki.rogue_cert, pki.rogue_key)):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_get(port, context)
    # and the server is still fine afterwards
    assert https_get(port, client_context(pki, pki.client_cert, pki.client_key))[0] == 200


def test_admin_tls_check_names_the_bad_file(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"server\.pem"):
        AdminTLS(pki.server_cert, pki.client_key).check()  # key of another certificate
    with pytest.raises(ValueError, match=r"nope\.pem"):
        AdminTLS(pki.server_cert, pki.server_key, tmp_path / "nope.pem").check()
    AdminTLS(pki.server_cert, pki.server_key, pki.ca_file).check()


def run_cli(*args: str) -> tuple[int, str]:
    """Exit code and output, rich's error box undone (one line, single spaces)."""
    result = CliRunner().invoke(app, ["run", "--store", "sqlite://:memory:", *args])
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--admin-listen", "0.0.0.0:8444"], "set --admin-token"),
        (["--admin-listen", "127.0.0.1:8444 ssl"], "needs --admin-cert and --admin-key"),
        (["--admin-listen", "127.0.0.1:8444 tls"], "is not 'HOST:PORT [ssl]' or off"),
        (["--admin-client-ca", "/x.pem"], "--admin-client-ca needs --admin-cert"),
        (["--admin-cert", "/x.pem"], "--admin-cert and --admin-key go together"),
    ],
)
def test_run_refuses_unsafe_or_incomplete_admin_settings(args: list[str], message: str) -> None:
    code, output = run_cli(*args)
    assert code == 2, output
    assert message in output, output


def test_run_refuses_a_key_that_does_not_match(pki: Pki) -> None:
    code, output = run_cli("--admin-cert", str(pki.server_cert), "--admin-key", str(pki.client_key))
    assert code == 2
    assert "cannot use the Admin API certificate" in output


def test_run_beyond_loopback_with_mutual_tls_instead_of_a_token(pki: Pki, tmp_path: Path) -> None:
    admin_port, proxy_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "MESHGATE_ADMIN_TOKEN"}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [
                *MESHGATE,
                "run",
                "--store",
                f"sqlite:///{tmp_path}/m.db",
                "--proxy-listen",
                f"127.0.0.1:{proxy_port}",
                "--admin-listen",
                f"0.0.0.0:{admin_port} ssl",
                "--admin-cert",
                str(pki.server_cert),
                "--admin-key",
                str(pki.server_key),
                "--admin-client-ca",
                str(pki.ca_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            wait_for_port(admin_port, proc=proc)
            good = client_context(pki, pki.client_cert, pki.client_key)
            status, body = https_get(admin_port, good, "/services")
            assert status == 200
            assert json.loads(body)["data"] == []
            with pytest.raises((ssl.SSLError, ConnectionError)):
                https_get(admin_port, client_context(pki))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        log.seek(0)
        assert f"admin  https://0.0.0.0:{admin_port}" in log.read()
