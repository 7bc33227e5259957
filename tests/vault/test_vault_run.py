"""Vault references through ``meshgate run -c FILE``: resolved from the node's environment,
refused at start (exit 2, field path) when unset, and a reload that breaks one keeps the
running config."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from testkit import MESHGATE, EchoUpstreams, Gateway, free_port


def write_config(path: Path, upstream_port: int, realm_ref: str) -> None:
    doc = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "s",
                "url": f"http://127.0.0.1:{upstream_port}",
                "routes": [
                    {
                        "name": "r",
                        "paths": ["/v"],
                        "plugins": [
                            {
                                "name": "key-auth",
                                "instance_name": "vaulted-auth",
                                "config": {"realm": realm_ref},
                            },
                            {
                                "name": "request-transformer",
                                "config": {
                                    "replace": {"uri": "{vault://env/mg-vault-e2e-json/path}"}
                                },
                            },
                        ],
                    }
                ],
            }
        ],
        "consumers": [{"username": "ann", "keyauth_credentials": [{"key": "k-ann"}]}],
    }
    path.write_text(yaml.safe_dump(doc))


@pytest.fixture
def vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_VAULT_E2E_REALM", "vaulted-realm")
    monkeypatch.setenv("MG_VAULT_E2E_JSON", json.dumps({"path": "/s3cr3t-path"}))
    monkeypatch.delenv("MG_VAULT_E2E_UNSET", raising=False)


def wait_for_log(gw: Gateway, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = gw.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never logged:\n{gw.log()}")


@pytest.mark.usefixtures("vault_env")
def test_references_resolve_at_compile_and_the_config_keeps_them(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    config = tmp_path / "kong.yaml"
    write_config(config, echo_upstreams.ports[0], "{vault://env/mg-vault-e2e-realm}")
    gw = Gateway(config, free_port())
    try:
        status, headers, _ = gw.request("GET", "/v")
        assert status == 401
        assert headers["www-authenticate"] == 'Key realm="vaulted-realm"'
        got = gw.echo("/v", {"apikey": "k-ann"})
        assert got["headers"]["x-consumer-username"] == "ann"
        assert got["url"] == "/s3cr3t-path"  # from the JSON member 'path' of MG_VAULT_E2E_JSON
        # the Admin API shows the reference, never the secret
        with urllib.request.urlopen(
            f"http://127.0.0.1:{gw.admin_port}/plugins", timeout=10
        ) as resp:
            listed = resp.read().decode()
        assert "{vault://env/mg-vault-e2e-json/path}" in listed
        assert "s3cr3t" not in listed
        assert "vaulted-realm" not in listed

        # a reload whose reference cannot be resolved is refused; the old config keeps running
        write_config(config, echo_upstreams.ports[0], "{vault://env/mg-vault-e2e-unset}")
        gw.signal(signal.SIGHUP)
        log = wait_for_log(gw, "running snapshot kept")
        assert "plugins.vaulted-auth.config.realm" in log
        assert "MG_VAULT_E2E_UNSET is not set" in log
        status, headers, _ = gw.request("GET", "/v")
        assert status == 401
        assert headers["www-authenticate"] == 'Key realm="vaulted-realm"'
    finally:
        gw.stop()


@pytest.mark.usefixtures("vault_env")
def test_run_refuses_to_start_on_an_unresolvable_reference(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    config = tmp_path / "kong.yaml"
    write_config(config, echo_upstreams.ports[0], "{vault://env/mg-vault-e2e-unset}")
    done = subprocess.run(
        [
            *MESHGATE,
            "run",
            "-c",
            str(config),
            "--proxy-listen",
            f"127.0.0.1:{free_port()}",
            "--admin-listen",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "plugins.vaulted-auth.config.realm" in done.stderr
    assert "MG_VAULT_E2E_UNSET is not set" in done.stderr
