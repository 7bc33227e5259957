"""The embedded event log: on-disk topic partitions in one directory, owned by one process."""

from meshgate.events.embedded.log import EmbeddedEventLog

__all__ = ["EmbeddedEventLog"]
