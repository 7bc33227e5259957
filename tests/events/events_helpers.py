"""Event-log test helpers: ``Backend`` opens a fresh log of one kind; unique topic names.

The kafka backend needs ``MESHGATE_TEST_KAFKA_BOOTSTRAP`` (``eval "$(bash
scripts/services/env.sh)"``) and is skipped without it; every test uses its own topic names.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshgate.events.api import EventLog
from meshgate.events.embedded import EmbeddedEventLog
from meshgate.events.kafka import KafkaEventLog

KAFKA_ENV = "MESHGATE_TEST_KAFKA_BOOTSTRAP"


def kafka_bootstrap() -> str:
    bootstrap = os.environ.get(KAFKA_ENV)
    if not bootstrap:
        pytest.skip(f'{KAFKA_ENV} is not set; start Kafka: eval "$(bash scripts/services/env.sh)"')
    return bootstrap


def unique_topic(prefix: str = "mg-events") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Backend:
    """How to open a fresh log of one kind; ``open`` may be called again (restart)."""

    kind: str
    directory: Path
    bootstrap: str = ""

    @asynccontextmanager
    async def open(self, **options: Any) -> AsyncIterator[EventLog]:
        log: EventLog
        if self.kind == "embedded":
            log = await EmbeddedEventLog.open(self.directory, **options)
        else:
            log = KafkaEventLog(self.bootstrap, request_timeout=10.0, **options)
        try:
            yield log
        finally:
            await log.close()
