"""Node-wide runtime directory and identity, shared by a supervisor and its worker processes.

Worker processes inherit these environment variables, which is how node-wide state finds
its place: ``MESHGATE_NODE_ID`` (one per ``meshgate run``), ``MESHGATE_RUNTIME_DIR`` (shared
counters, sockets) and ``PROMETHEUS_MULTIPROC_DIR`` (metrics summed across workers).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path


class NodeEnvironment:
    """Creates (and on ``close`` removes) the node's runtime directory."""

    def __init__(self) -> None:
        given = os.environ.get("MESHGATE_RUNTIME_DIR")
        self._owned = given is None
        self.runtime_dir = Path(given) if given else Path(tempfile.mkdtemp(prefix="meshgate-"))
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.node_id = os.environ.get("MESHGATE_NODE_ID") or f"{socket.gethostname()}-{os.getpid()}"
        metrics = self.runtime_dir / "prometheus"
        if metrics.exists():  # values of a previous run would be summed into ours
            shutil.rmtree(metrics)
        metrics.mkdir()
        names = ("MESHGATE_RUNTIME_DIR", "MESHGATE_NODE_ID", "PROMETHEUS_MULTIPROC_DIR")
        self._previous = {name: os.environ.get(name) for name in names}
        os.environ["MESHGATE_RUNTIME_DIR"] = str(self.runtime_dir)
        os.environ["MESHGATE_NODE_ID"] = self.node_id
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics))

    def close(self) -> None:
        """Remove the directory (when made here) and put the environment back as it was."""
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._owned:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
