"""Event-log test fixtures: ``backend`` runs a test once per EventLog implementation."""

from __future__ import annotations

from pathlib import Path

import pytest
from events_helpers import Backend, kafka_bootstrap


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.services)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "kafka":
        return Backend("kafka", tmp_path, kafka_bootstrap())
    return Backend("embedded", tmp_path / "log")
