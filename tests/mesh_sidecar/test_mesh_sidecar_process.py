"""A real ``meshgate dp`` process: it execs the serving process (same PID), serves, and that
process never loads the command line's modules, the Admin API, the store, the events API,
the plugin packages or ``cryptography``."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import MESHGATE, free_port, wait_for_port

pytestmark = pytest.mark.slow

# modules (and their submodules) a serving sidecar must not hold
NOT_IN_A_SIDECAR = (
    "typer",
    "click",
    "rich",
    "yaml",
    "cryptography",
    "starlette",
    "uvicorn",
    "meshgate.cli",
    "meshgate.controlplane",
    "meshgate.store",
    "meshgate.events",
    "meshgate.compiler",
    "meshgate.resources",
    "meshgate.policies",
    "meshgate.plugins.",  # the package itself is the registry's; no plugin is loaded
)

DUMP_MODULES = (
    "import atexit, os, sys\n"
    "def _dump():\n"
    "    path = os.path.join(os.environ['SIDECAR_TEST_DUMP'], f'{os.getpid()}.modules')\n"
    "    with open(path, 'w') as file:\n"
    "        file.write('\\n'.join(sorted(sys.modules)))\n"
    "atexit.register(_dump)\n"
)


def forbidden(modules: list[str]) -> list[str]:
    return [
        name
        for name in modules
        for prefix in NOT_IN_A_SIDECAR
        if (name == prefix.rstrip(".") and not prefix.endswith("."))
        or name.startswith(prefix if prefix.endswith(".") else prefix + ".")
    ]


class _App(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"app says hi"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def app_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def test_forbidden_matches_packages_and_their_modules() -> None:
    assert forbidden(["typer.main", "meshgate.plugins.key_auth.handler", "yaml"]) == [
        "typer.main",
        "meshgate.plugins.key_auth.handler",
        "yaml",
    ]
    assert forbidden(["meshgate.plugins", "meshgate.proxy.runtime", "typing", "clickhouse"]) == []


def test_serving_module_imports_nothing_of_the_command_line() -> None:
    code = "import sys, meshgate.agent.dataplane.serve; print('\\n'.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    modules = done.stdout.split()
    assert "meshgate.proxy.runtime" in modules
    assert forbidden(modules) == []


def test_the_serving_entry_keeps_pydantic_plugin_discovery_out() -> None:
    code = (
        "import sys\n"
        "from meshgate.agent.dataplane.start import without_pydantic_plugins\n"
        "without_pydantic_plugins()\n"
        "import meshgate.agent.dataplane.serve\n"
        "from meshgate import snapshot\n"
        "snapshot.Snapshot.model_validate({'version': 'v1'})\n"
        "print('\\n'.join(sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    modules = done.stdout.split()
    assert "importlib.metadata" not in modules
    assert "meshgate.proxy.runtime" in modules


def test_meshgate_dp_execs_a_lean_serving_process(tmp_path: Path, app_port: int) -> None:
    api_port, dp_port, inbound_port = free_port(), free_port(), free_port()
    dump = tmp_path / "dump"
    dump.mkdir()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(DUMP_MODULES)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115
    cp = subprocess.Popen(
        [*MESHGATE, "cp", "--store", f"sqlite:///{tmp_path}/cp.db",
         "--api-listen", f"127.0.0.1:{api_port}", "--dp-listen", f"127.0.0.1:{dp_port}",
         "--dp-ca-out", str(tmp_path / "ca.pem"), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    dp: subprocess.Popen[str] | None = None
    try:
        wait_for_port(api_port, proc=cp)
        wait_for_port(dp_port, proc=cp)
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/tokens/dataplane", method="POST",
            data=json.dumps({"mesh": "default", "name": "web"}).encode(),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            (tmp_path / "web.token").write_bytes(response.read())
        state = tmp_path / "state-web"
        dp = subprocess.Popen(
            [*MESHGATE, "dp", "--cp", f"https://127.0.0.1:{dp_port}",
             "--token", str(tmp_path / "web.token"), "--name", "web",
             "--inbound", f"web:{inbound_port}:http:{app_port}", "--state-dir", str(state),
             "--ca-cert", str(tmp_path / "ca.pem"), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, text=True,
            env={**env, "SIDECAR_TEST_DUMP": str(dump), "PYTHONPATH": str(site)},
        )  # fmt: skip
        wait_for_port(inbound_port, timeout=30, proc=dp)  # the first snapshot runs
        with urllib.request.urlopen(f"http://127.0.0.1:{inbound_port}/", timeout=10) as reply:
            assert reply.read() == b"app says hi"

        command = Path(f"/proc/{dp.pid}/cmdline").read_bytes().split(b"\0")
        assert b"meshgate.agent.dataplane.start" in command  # same PID, serving process now
        maps = Path(f"/proc/{dp.pid}/maps").read_text()
        assert "uvloop" in maps
        assert "cryptography" not in maps
        assert (state / "key.pem").stat().st_mode & 0o777 == 0o600
        assert "CERTIFICATE REQUEST" in json.loads((state / "csr.json").read_text())["csr"]

        assert _stop(dp) == 0
        modules = (dump / f"{dp.pid}.modules").read_text().split()
        assert "meshgate.proxy.http.server" in modules  # it did serve
        assert forbidden(modules) == []
    finally:
        if dp is not None:
            _stop(dp)
        _stop(cp)
        log.seek(0)
        output = log.read()
        log.close()
    assert "Traceback" not in output, output
