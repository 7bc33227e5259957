"""Event-log bridge fixtures: ``backend`` is the EventLog contract backend over the bridge."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from events_bridge_helpers import BridgeBackend, short_socket_dir

# the contract tests (and their helpers) are imported from tests/events by module name
_CONTRACT_DIR = str(Path(__file__).resolve().parent.parent / "events")
if _CONTRACT_DIR not in sys.path:
    sys.path.insert(0, _CONTRACT_DIR)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BridgeBackend]:
    with short_socket_dir() as sockets:
        yield BridgeBackend(tmp_path / "log", sockets / "events.sock")
