"""How ``meshgate dp`` hands over to the sidecar's serving process.

The command line needs typer, YAML, the resource schemas that validate the Dataplane and
``cryptography`` (to make the workload key and CSR) for a moment; the sidecar then serves for
the life of its workload.  ``exec_sidecar`` writes a ``Launch`` into the state directory and
replaces the current process (same PID, so signals and process supervisors see one process)
with ``python -m meshgate.agent.dataplane.start LAUNCH_FILE`` (``serve`` without pydantic's
plugin loader), whose memory holds only what
serving needs (56 → 40 MB RSS in ``bench/mesh_bench.py``).  Unless the environment sets it,
the new process gets ``PYTHONNODEBUGRANGES=1``: no column tables in code objects it compiles
(~0.3 MB; tracebacks lose only the ``^^^`` markers).  ``MALLOC_ARENA_MAX`` and
``UV_THREADPOOL_SIZE`` were measured too and made no difference: a sidecar's threads (libuv's
workers) allocate little.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.agent.dataplane.client import AgentConfig

LAUNCH_FILE = "launch.json"
SERVE_MODULE = "meshgate.agent.dataplane.start"
SERVING_ENV = {"PYTHONNODEBUGRANGES": "1"}
_PATH_FIELDS = ("token_file", "state_dir", "ca_file")


@dataclass(slots=True)
class Launch:
    """Everything the serving process runs with."""

    agent: AgentConfig
    log_level: str = "info"
    access_log: bool = False
    drain_timeout: float = 5.0

    def to_json(self) -> str:
        agent: dict[str, Any] = {}
        for item in dataclasses.fields(self.agent):
            value = getattr(self.agent, item.name)
            agent[item.name] = str(Path(value).absolute()) if isinstance(value, Path) else value
        return json.dumps(
            {
                "agent": agent,
                "log_level": self.log_level,
                "access_log": self.access_log,
                "drain_timeout": self.drain_timeout,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Launch:
        data = json.loads(text)
        agent = dict(data["agent"])
        for name in _PATH_FIELDS:
            if agent.get(name) is not None:
                agent[name] = Path(agent[name])
        return cls(
            agent=AgentConfig(**agent),
            log_level=str(data["log_level"]),
            access_log=bool(data["access_log"]),
            drain_timeout=float(data["drain_timeout"]),
        )


def serving_command(launch_file: Path) -> list[str]:
    return [sys.executable, "-m", SERVE_MODULE, str(launch_file)]


def serving_environment(base: dict[str, str]) -> dict[str, str]:
    """``base`` plus the serving process's settings (``SERVING_ENV``, ``PYTHONPATH``)."""
    env = {**SERVING_ENV, **base}
    # the package may have been found through sys.path rather than an installation
    package_root = str(Path(__file__).resolve().parents[3])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([package_root, *paths])
    return env


def exec_sidecar(launch: Launch) -> None:
    """Replace this process with the serving process (does not return)."""
    launch_file = launch.agent.state_dir / LAUNCH_FILE
    temporary = launch_file.with_name(LAUNCH_FILE + ".tmp")
    temporary.write_text(launch.to_json())
    os.replace(temporary, launch_file)
    sys.stdout.flush()
    sys.stderr.flush()
    command = serving_command(launch_file.absolute())
    os.execve(command[0], command, serving_environment(dict(os.environ)))
