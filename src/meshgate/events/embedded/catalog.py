"""The embedded log's directory: its owner lock, topic names and the ``topics.json`` catalog.

Layout of a log directory::

    lock                      held (flock) by the one process that owns the log; holds its pid
    topics.json               {"topics": {name: {"partitions": n, "config": {...}}}}
    consumer-offsets.jsonl    committed group offsets, append-only
    <topic>-<partition>/      segment files of one partition

``topics.json`` is replaced atomically (write, fsync, rename, fsync the directory).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from meshgate.events.api import TopicInfo
from meshgate.events.embedded.partition import PartitionLog, PartitionSettings, fsync_directory
from meshgate.events.errors import InvalidTopic, LogLocked

TOPICS_FILE = "topics.json"
LOCK_FILE = "lock"
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_INT_CONFIGS = ("segment.bytes", "retention.bytes", "retention.ms", "max.message.bytes")


def validate_topic_name(name: str) -> None:
    """Kafka's rule: 1-249 of ``[A-Za-z0-9._-]``, not ``.`` or ``..`` (also keeps paths safe)."""
    if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidTopic(f"invalid topic name {name!r}: use 1-249 of [A-Za-z0-9._-]")


def validate_topic_config(config: Mapping[str, str]) -> dict[str, str]:
    """Keep the supported keys (integer values); refuse anything else like Kafka does."""
    checked: dict[str, str] = {}
    for key, value in config.items():
        if key not in _INT_CONFIGS:
            raise InvalidTopic(
                f"unsupported topic config {key!r}; known: {', '.join(_INT_CONFIGS)}"
            )
        try:
            int(value)
        except (TypeError, ValueError):
            raise InvalidTopic(f"topic config {key!r} must be an integer, got {value!r}") from None
        checked[key] = str(value)
    return checked


def partition_settings(config: Mapping[str, str], default_segment_bytes: int) -> PartitionSettings:
    return PartitionSettings(
        segment_bytes=int(config.get("segment.bytes", default_segment_bytes)),
        retention_bytes=int(config.get("retention.bytes", -1)),
        retention_ms=int(config.get("retention.ms", -1)),
    )


def partition_directory(root: Path, topic: str, partition: int) -> Path:
    return root / f"{topic}-{partition}"


def open_partitions(
    root: Path, info: TopicInfo, default_segment_bytes: int
) -> dict[tuple[str, int], PartitionLog]:
    """Open (recovering, or creating) every partition directory of ``info``."""
    settings = partition_settings(info.config, default_segment_bytes)
    return {
        (info.name, number): PartitionLog.open(
            partition_directory(root, info.name, number), info.name, number, settings
        )
        for number in range(info.partitions)
    }


def load_topics(root: Path) -> dict[str, TopicInfo]:
    path = root / TOPICS_FILE
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {
        name: TopicInfo(name, int(entry["partitions"]), dict(entry.get("config", {})))
        for name, entry in raw["topics"].items()
    }


def save_topics(root: Path, topics: Mapping[str, TopicInfo]) -> None:
    body = {
        "topics": {
            info.name: {"partitions": info.partitions, "config": info.config}
            for info in topics.values()
        }
    }
    temporary = root / (TOPICS_FILE + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(body, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, root / TOPICS_FILE)
    fsync_directory(root)


class DirectoryLock:
    """An exclusive ``flock`` on ``<root>/lock``; released when the process ends, even by crash."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise LogLocked(
                f"embedded event log {root} is owned by process {owner}; only one process may "
                "open it (run it in one process and share it, or use the kafka backend)"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
