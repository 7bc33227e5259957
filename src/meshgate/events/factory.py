"""Open an ``EventLog`` from a URL, the form configuration uses.

* ``embedded:///var/lib/meshgate/events`` (or a plain path) — the on-disk log in that directory
* ``kafka://host1:9092,host2:9092`` — Apache Kafka with those bootstrap servers

Keyword options go to the backend (``auto_create_topics``, ``max_record_bytes``, …).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from meshgate.events.api import EventLog
from meshgate.events.errors import EventLogError


async def open_event_log(url: str, **options: Any) -> EventLog:
    """The backend ``url`` names, opened (must run inside the event loop that will use it)."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme in ("", "embedded", "file"):
        from meshgate.events.embedded import EmbeddedEventLog

        path = url.split("://", 1)[1] if scheme else url
        if not path:
            raise EventLogError(f"no directory in event log URL {url!r}")
        return await EmbeddedEventLog.open(path, **options)
    if scheme == "kafka":
        from meshgate.events.kafka import KafkaEventLog

        bootstrap = url.split("://", 1)[1].rstrip("/")
        if not bootstrap:
            raise EventLogError(f"no bootstrap servers in event log URL {url!r}")
        return KafkaEventLog(bootstrap, **options)
    raise EventLogError(
        f"unknown event log URL scheme {scheme!r} in {url!r}; use embedded or kafka"
    )
