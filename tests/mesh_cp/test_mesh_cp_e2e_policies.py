"""Mesh policies end to end with real processes on loopback: one ``meshgate cp``, the apps of
one process (``mesh_cp_apps``), each service behind its own ``meshgate dp`` sidecar, policies
applied with ``meshgate mesh apply -f``.

The world (module scope, mesh ``secure``, mTLS from the builtin CA, no default MeshRetry):
``svc-a`` and ``svc-c`` are clients; ``svc-b`` an HTTP echo; ``svc-t`` a TCP echo; ``web``
two versions (tags ``version=v1``/``v2``); ``flaky`` an app failing two requests in three.
``svc-c`` is denied ``svc-b`` and ``svc-t`` by MeshTrafficPermissions.  Mesh ``rotating``
(certificates of 1m, the shortest the Mesh resource accepts; two CA backends) holds
``rot-server`` and ``rot-client`` for the rotation test.
"""

from __future__ import annotations

import http.client
import math
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mesh_cp_procs import (
    Inbound,
    Mesh,
    Workload,
    eventually,
    mtls_get,
    request,
    served_serial,
    uri_sans,
)

from testkit import free_port

# 120 s: whichever test runs first also pays for the module's world (11 processes; 20-45 s
# on a busy 2-CPU machine); every test's own body stays under ~35 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SECURE = """\
type: Mesh
name: secure
skipCreatingInitialPolicies: [MeshRetry]
mtls:
  enabledBackend: ca-1
  backends: [{name: ca-1, type: builtin}]
---
type: MeshTrafficPermission
name: deny-c-to-b
mesh: secure
spec:
  targetRef: {kind: MeshService, name: svc-b}
  from:
    - targetRef: {kind: MeshService, name: svc-c}
      default: {action: Deny}
---
type: MeshTrafficPermission
name: deny-c-to-t
mesh: secure
spec:
  targetRef: {kind: MeshService, name: svc-t}
  from:
    - targetRef: {kind: MeshService, name: svc-c}
      default: {action: Deny}
---
type: MeshHTTPRoute
name: web-split
mesh: secure
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: web}
      rules:
        - matches: [{path: {type: PathPrefix, value: /}}]
          default:
            backendRefs:
              - {kind: MeshServiceSubset, name: web, tags: {version: v1}, weight: 90}
              - {kind: MeshServiceSubset, name: web, tags: {version: v2}, weight: 10}
"""

ROTATING = """\
type: Mesh
name: rotating
mtls:
  enabledBackend: ca-1
  backends:
    - {name: ca-1, type: builtin, dpCert: {rotation: {expiration: 1m}}}
    - {name: ca-2, type: builtin, dpCert: {rotation: {expiration: 1m}}}
"""


class World:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.port: dict[str, int] = {}
        self.state: dict[str, Path] = {}

    def start(self) -> None:
        mesh, port = self.mesh, self.port
        for name in ("b-app", "t-app", "v1-app", "v2-app", "flaky-app", "rot-app", "dead"):
            port[name] = free_port()
        mesh.apps(
            f"echo:svc-b:{port['b-app']}", f"tcp:{port['t-app']}", f"echo:web-v1:{port['v1-app']}",
            f"echo:web-v2:{port['v2-app']}", f"flaky:flaky:{port['flaky-app']}",
            f"echo:rot-server:{port['rot-app']}",
        )  # fmt: skip
        mesh.apply(SECURE, "secure.yaml")
        mesh.apply(ROTATING, "rotating.yaml")
        for name in ("b", "t", "v1", "v2", "flaky", "a", "c", "rot"):
            port[name] = free_port()  # inbound ports
        for client in ("a", "c"):
            for target in ("svc-b", "svc-t", "web", "flaky"):
                port[f"{client}-to-{target}"] = free_port()
        port["rot-client-out"] = free_port()
        servers = {
            "svc-b-1": Inbound("svc-b", port["b"], port["b-app"]),
            "svc-t-1": Inbound("svc-t", port["t"], port["t-app"], protocol="tcp"),
            "web-v1": Inbound("web", port["v1"], port["v1-app"], tags={"version": "v1"}),
            "web-v2": Inbound("web", port["v2"], port["v2-app"], tags={"version": "v2"}),
            "flaky-1": Inbound("flaky", port["flaky"], port["flaky-app"]),
        }
        for name, inbound in servers.items():
            self.state[name] = mesh.sidecar(name, "secure", [inbound], {})
        for client in ("a", "c"):
            outbounds = {t: port[f"{client}-to-{t}"] for t in ("svc-b", "svc-t", "web", "flaky")}
            inbound = Inbound(f"svc-{client}", port[client], port["dead"])
            self.state[f"svc-{client}-1"] = mesh.sidecar(
                f"svc-{client}-1", "secure", [inbound], outbounds
            )
        rot_server = Inbound("rot-server", port["rot"], port["rot-app"])
        self.state["rot-server"] = mesh.sidecar("rot-server", "rotating", [rot_server], {})
        self.state["rot-client"] = mesh.sidecar(
            "rot-client", "rotating", [], {"rot-server": port["rot-client-out"]}
        )
        for name in self.state:
            where = "rotating" if name.startswith("rot-") else "secure"
            eventually(lambda n=name, w=where: self.mesh.acked(w, n), timeout=40)  # type: ignore[misc]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mesh = Mesh(tmp_path_factory.mktemp("mesh-policies"))
    mesh.start_cp()
    built = World(mesh)
    try:
        built.start()
        yield built
    finally:
        mesh.close()


def upstream(port: int, path: str = "/") -> str:
    status, body = request(port, path)
    assert status == 200, body
    return str(body["upstream"])


def test_sidecars_speak_mtls_with_their_spiffe_identities(world: World) -> None:
    # the echo app behind svc-b's inbound sees no client-certificate header (the inbound does
    # not forward one), so the identities are checked on the inbound itself, with the
    # workloads' own certificates (read from their sidecars' state directories)
    assert eventually(lambda: upstream(world.port["a-to-svc-b"]) == "svc-b")
    status, body = request(world.port["a-to-svc-b"])
    assert status == 200
    assert not any("client-cert" in name for name in body["headers"])
    listed = world.mesh.cli("get", "dataplanes", "--mesh", "secure")
    assert f"[svc-b:{world.port['b']}]" in listed  # not eaten as rich markup
    as_a, as_c = Workload.of(world.state["svc-a-1"]), Workload.of(world.state["svc-c-1"])
    assert uri_sans(_der(as_a.cert))[0] == "spiffe://secure/svc-a"
    assert uri_sans(_der(as_c.cert))[0] == "spiffe://secure/svc-c"

    server_cert, status_as_a = mtls_get(world.port["b"], as_a.context())
    assert uri_sans(server_cert)[0] == "spiffe://secure/svc-b"  # verified against the mesh CA
    assert status_as_a == 200
    _, status_as_c = mtls_get(world.port["b"], as_c.context())
    assert status_as_c == 403  # same CA, other identity: the permission tells them apart
    _, status_anonymous = mtls_get(world.port["b"], as_a.context(present=False))
    assert status_anonymous not in (200, 403)  # strict mTLS: no certificate, no HTTP at all
    # every workload serves its own identity, tags included
    web_cert, _ = mtls_get(world.port["v1"], as_a.context())
    assert uri_sans(web_cert)[0] == "spiffe://secure/web"
    assert "kuma://version/v1" in uri_sans(web_cert)


def _der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


def test_traffic_permission_denies_one_pair_with_403_and_closed_tcp(world: World) -> None:
    port = world.port
    assert eventually(lambda: request(port["a-to-svc-b"])[0] == 200)
    assert eventually(lambda: request(port["c-to-svc-b"])[0] == 403)
    status, body = request(port["c-to-svc-b"])
    assert status == 403
    assert "cannot consume" in str(body)
    assert upstream(port["c-to-web"]) in ("web-v1", "web-v2")  # only the denied pair is cut

    assert _tcp_echo(port["a-to-svc-t"], b"hello mesh") == b"hello mesh"
    assert _tcp_echo(port["c-to-svc-t"], b"hello mesh") == b""  # closed, nothing echoed


def _tcp_echo(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            received = b""
            while len(received) < len(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            return received
        except ConnectionResetError:
            return b""


def test_http_route_splits_90_10_over_1000_requests(world: World) -> None:
    port = world.port["a-to-web"]
    assert eventually(lambda: upstream(port) in ("web-v1", "web-v2"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen: Counter[str] = Counter()
    for _ in range(1000):
        conn.request("GET", "/split")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        seen[response.headers["x-upstream"]] += 1
    conn.close()
    # binomial(n=1000, p=0.1): sd = 9.5; 5 sd either side (false alarm odds < 1e-6)
    tolerance = 5 * math.sqrt(1000 * 0.1 * 0.9)
    assert abs(seen["web-v2"] - 100) <= tolerance, seen
    assert seen["web-v1"] + seen["web-v2"] == 1000


def test_mesh_retry_hides_injected_failures(world: World) -> None:
    port = world.port["a-to-flaky"]
    # without a MeshRetry the app's 503s reach the client (its resets do not: the proxy's
    # default retries of connection errors, Kong's ``service.retries``, already hide them)
    statuses = Counter(request(port)[0] for _ in range(9))
    assert statuses[503] >= 3, statuses
    before = world.mesh.acked("secure", "svc-a-1")
    applied = world.mesh.apply(
        "type: MeshRetry\nname: flaky-retry\nmesh: secure\nspec:\n  targetRef: {kind: Mesh}\n"
        "  to:\n    - targetRef: {kind: MeshService, name: flaky}\n      default:\n"
        "        http: {numRetries: 3, backOff: {baseInterval: 5ms, maxInterval: 20ms},\n"
        "               retryOn: [5xx, Reset, ConnectFailure]}\n",
        "retry.yaml",
    )
    assert "MeshRetry flaky-retry created" in applied
    world.mesh.wait_new_version("secure", "svc-a-1", before)
    results = [request(port) for _ in range(30)]
    assert [status for status, _ in results] == [200] * 30
    assert all(body["upstream"] == "flaky" for _, body in results)


def test_mesh_timeout_answers_504_in_about_the_configured_time(world: World) -> None:
    port = world.port["a-to-svc-b"]
    before = world.mesh.acked("secure", "svc-a-1")
    world.mesh.apply(
        "type: MeshTimeout\nname: b-timeout\nmesh: secure\nspec:\n  targetRef: {kind: Mesh}\n"
        "  to:\n    - targetRef: {kind: MeshService, name: svc-b}\n"
        "      default: {http: {requestTimeout: 1s}}\n",
        "timeout.yaml",
    )
    world.mesh.wait_new_version("secure", "svc-a-1", before)
    assert request(port, headers={"x-echo-delay": "0.2"})[0] == 200  # under the limit
    started = time.monotonic()
    status, body = request(port, headers={"x-echo-delay": "4"})
    took = time.monotonic() - started
    assert status == 504, body
    assert 0.9 <= took < 2.5, took


def test_invalid_policies_are_rejected_with_every_field_error(world: World) -> None:
    path = world.mesh.tmp / "invalid.yaml"
    path.write_text(
        "type: MeshTimeout\nname: bad-timeout\nmesh: secure\nspec:\n"
        "  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService}\n"
        "      default: {connectionTimeout: soon, http: {requestTimeout: -3s}}\n"
        "---\n"
        "type: MeshHTTPRoute\nname: bad-route\nmesh: secure\nspec:\n  targetRef: {kind: Mesh}\n"
        "  to:\n    - targetRef: {kind: MeshService, name: web}\n      rules:\n"
        "        - matches: [{path: {type: Sometimes, value: /}}]\n"
        "          default: {backendRefs: [{kind: MeshService, name: web, weight: -1}]}\n"
    )
    done = world.mesh.run_cli("apply", "-f", str(path))
    assert done.returncode != 0
    for expected in (
        "bad-timeout",
        "spec.to[0].targetRef.name",
        "spec.to[0].default.connectionTimeout",
        "spec.to[0].default.http.requestTimeout",
        "bad-route",
        "spec.to[0].rules[0].matches[0].path.type",
        "spec.to[0].rules[0].default.backendRefs[0].weight",
    ):
        assert expected in done.stderr, (expected, done.stderr)
    listed = world.mesh.cli("get", "meshtimeouts", "--mesh", "secure")
    assert "bad-timeout" not in listed


def test_certificate_rotation_under_load_fails_no_request(world: World) -> None:
    mesh, port = world.mesh, world.port
    assert eventually(lambda: upstream(port["rot-client-out"]) == "rot-server")
    serials = [served_serial(port["rot"])]
    load = _Load(port["rot-client-out"])
    load.start()
    try:
        # 1: the 1m certificate reaches 2/3 of its life (at most ~37 s after it was issued)
        serials.append(
            eventually(lambda: (s := served_serial(port["rot"])) != serials[0] and s, timeout=45)
        )
        # 2: the mesh switches CA: every certificate is re-issued by ca-2
        mesh.apply(ROTATING.replace("enabledBackend: ca-1", "enabledBackend: ca-2"), "rot2.yaml")
        serials.append(
            eventually(lambda: (s := served_serial(port["rot"])) != serials[1] and s, timeout=10)
        )
        time.sleep(1)
    finally:
        load.stop()
    assert len(set(serials)) == 3
    assert load.failures == [], load.failures[:5]
    assert load.done > 100
    status = mesh.status("rotating", "rot-server")
    assert status["certificate"]["regenerations"] >= 2


class _Load:
    """Two request loops: one on a keep-alive connection, one on a fresh connection each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.done = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(keep_alive,), daemon=True)
            for keep_alive in (True, False)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _loop(self, keep_alive: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/load")
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(f"status {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                conn = None
            self.done += 1
            if not keep_alive and conn is not None:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
