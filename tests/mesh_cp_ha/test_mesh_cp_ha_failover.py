"""Two ``meshgate cp`` processes on one SQLite file and a ``meshgate dp`` sidecar given both:
the replica that does not hold the sidecar shows what the holder learnt (ACK, certificate);
``kill -9`` of the holder gets the sidecar admitted by the other, and it serves traffic all
along.  A replica started later with a name of its own (``--dp-server-name``) is accepted by
clients that check its certificate against the DP root under that name."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mesh_cp_ha_kit import app_server, cluster, get_status, snapshot_of

from testkit import eventually, free_port

MTLS = {"mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}}


def _online_at(status: dict[str, Any] | None, cp: str) -> bool:
    return bool(status and status["state"] == "online" and status["controlPlane"] == cp)


class Poller:
    """``GET /`` on a port every 50 ms in a thread, keeping each answer's status or error."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.results: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.results.append(get_status(self.port))
            except OSError as exc:
                self.results.append(repr(exc))

    def stop(self) -> list[int | str]:
        self._stop.set()
        self._thread.join(10)
        return self.results


def test_a_sidecar_fails_over_between_replicas_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cp.db"
    with cluster(tmp_path, url) as mesh, app_server() as app_port:
        mesh.start("cp-a", "cp-b")
        a, b = mesh.replicas["cp-a"], mesh.replicas["cp-b"]
        a.api("/meshes/default", "PUT", MTLS)
        outbound = free_port()
        state = mesh.sidecar(
            "mover", [b, a], ("svc-m", free_port()), {"svc-m": outbound}, app_port=app_port
        )
        eventually(lambda: get_status(outbound) == 200)
        served = snapshot_of(state)["version"]
        # what cp-b learnt of its sidecar, cp-a shows: the ACK and the certificate
        held = eventually(
            lambda: (s := b.status("mover")) and s["lastAckedVersion"] == served and s
        )
        seen = eventually(
            lambda: (s := a.status("mover")) and s["lastAckedVersion"] == served and s
        )
        assert _online_at(seen, "cp-b")
        assert _online_at(held, "cp-b")
        assert seen["certificate"]["serial"]
        assert held["certificate"]["serial"]
        assert seen["certificate"] == {
            **held["certificate"], "expiresInSeconds": seen["certificate"]["expiresInSeconds"]
        }  # fmt: skip

        poller = Poller(outbound)
        eventually(lambda: len(poller.results) >= 2)
        assert b.proc is not None
        b.proc.kill()  # SIGKILL: no bye, no release
        readmitted = eventually(lambda: _online_at(a.status("mover"), "cp-a"), timeout=10)
        assert readmitted
        # cp-a signed a new certificate: a new version, ACKed to cp-a
        eventually(
            lambda: (
                (a.status("mover") or {}).get("lastAckedVersion")
                == snapshot_of(state)["version"]
                != served
            )
        )
        time.sleep(0.3)
        answers = poller.stop()
        assert len(answers) >= 5, answers
        assert set(answers) == {200}, answers
        assert get_status(outbound) == 200


def _loopback_name() -> str | None:
    """A host name other than ``localhost`` that resolves to 127.0.0.1 here, if any."""
    name = socket.gethostname()
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        return None
    return name if name != "localhost" and found == {"127.0.0.1"} else None


def _handshake(port: int, ca_file: Path, name: str) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name),
    ):
        pass


def test_a_replica_started_later_serves_its_own_dp_server_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cp.db"
    dialled = _loopback_name()
    name = dialled or "cp-b.mesh.test"
    with cluster(tmp_path, url) as mesh:
        mesh.start("cp-a")
        mesh.start("cp-b", extra=("--dp-server-name", name))
        a, b = mesh.replicas["cp-a"], mesh.replicas["cp-b"]
        ca_file = tmp_path / "cp-a-ca.pem"  # the root cp-a wrote: sidecars were given that
        assert (tmp_path / "cp-b-ca.pem").read_text() == ca_file.read_text()
        _handshake(b.dp_port, ca_file, name)
        _handshake(a.dp_port, ca_file, "localhost")
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(a.dp_port, ca_file, name)  # cp-a's certificate is not for that name
        if dialled is None:
            pytest.skip("no host name other than localhost resolves to 127.0.0.1 here")
        mesh.sidecar(
            "named", [a], ("svc-n", free_port()), {},
            urls=[f"https://{dialled}:{b.dp_port}"],
        )  # fmt: skip
        eventually(lambda: _online_at(a.status("named"), "cp-b"), timeout=15)
