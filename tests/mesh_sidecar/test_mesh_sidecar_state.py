"""The sidecar's state directory and launch file: the CSR is made once (no ``cryptography``
afterwards), a workload certificate only takes the sidecar's own key, the launch file
round-trips."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate import snapshot
from meshgate.agent.dataplane import snapshot_codec
from meshgate.agent.dataplane.client import AgentConfig
from meshgate.agent.dataplane.launch import SERVING_ENV, Launch, serving_environment
from meshgate.agent.dataplane.protocol import LOCAL_KEY
from meshgate.agent.dataplane.state import StateDir, with_local_key


def _certificate_for(key_pem: str) -> str:
    """A self-signed certificate for the public key of ``key_pem``."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _keyless(cert_pem: str) -> snapshot.Snapshot:
    """A pushed snapshot as the serving process holds it (``snapshot_codec``)."""
    pushed = snapshot.Snapshot(
        version="v1",
        certificates=(snapshot.Certificate(id="mesh-workload", cert=cert_pem, key=LOCAL_KEY),),
    )
    return snapshot_codec.from_builtins(pushed.model_dump(mode="json"))


def test_csr_is_made_once_per_key_and_name(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    first = state.csr("web")
    assert "CERTIFICATE REQUEST" in first
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    assert state.csr("web") == first  # ECDSA signatures differ each time: this one is cached
    assert state.csr("api") != first
    (tmp_path / "key.pem").unlink()
    renewed = state.csr("api")
    assert renewed != first
    request = x509.load_pem_x509_csr(renewed.encode())
    assert request.is_signature_valid
    key = serialization.load_pem_private_key(state.key_pem().encode(), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert request.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def test_a_broken_key_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n")
    state = StateDir(tmp_path)
    assert x509.load_pem_x509_csr(state.csr("web").encode()).is_signature_valid
    assert "not base64" not in (tmp_path / "key.pem").read_text()


def test_a_prepared_state_directory_needs_no_cryptography(tmp_path: Path) -> None:
    expected = StateDir(tmp_path).csr("web")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from meshgate.agent.dataplane.state import StateDir\n"
        f"print(StateDir(Path({str(tmp_path)!r})).csr('web'), end='')\n"
        "print('cryptography' in sys.modules, end='')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout == expected + "False"


def test_with_local_key_fills_in_the_sidecars_key(tmp_path: Path) -> None:
    key_pem = StateDir(tmp_path).key_pem()
    cert_pem = _certificate_for(key_pem)
    ready = with_local_key(_keyless(cert_pem), key_pem)
    assert [c.key for c in ready.certificates] == [key_pem]
    assert ready.certificates[0].cert == cert_pem


def test_with_local_key_refuses_a_certificate_for_another_key(tmp_path: Path) -> None:
    ours = StateDir(tmp_path / "ours").key_pem()
    theirs = StateDir(tmp_path / "theirs").key_pem()
    with pytest.raises(ValueError, match="mesh-workload was not issued for this sidecar's key"):
        with_local_key(_keyless(_certificate_for(theirs)), ours)


def test_launch_round_trips(tmp_path: Path) -> None:
    config = AgentConfig(
        cp_host="127.0.0.1", cp_port=5678, token_file=tmp_path / "token",
        dataplane={"type": "Dataplane", "name": "web", "mesh": "default"},
        state_dir=tmp_path / "state", ca_file=None, fingerprint="sha256:ab", backoff_max=2.0,
    )  # fmt: skip
    launch = Launch(config, log_level="debug", access_log=True, drain_timeout=1.5)
    assert Launch.from_json(launch.to_json()) == launch


def test_serving_environment_keeps_what_the_user_set() -> None:
    assert serving_environment({})["PYTHONNODEBUGRANGES"] == SERVING_ENV["PYTHONNODEBUGRANGES"]
    env = serving_environment({"PYTHONNODEBUGRANGES": "", "PYTHONPATH": "/somewhere"})
    assert env["PYTHONNODEBUGRANGES"] == ""
    paths = env["PYTHONPATH"].split(":")
    assert paths[-1] == "/somewhere"
    assert (Path(paths[0]) / "meshgate" / "agent" / "dataplane" / "serve.py").exists()
