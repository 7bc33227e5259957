"""Committed consumer-group offsets of the embedded log: an append-only JSON-lines file.

Each commit appends one line per partition, ``{"g": group, "t": topic, "p": n, "o": offset}``,
and fsyncs before ``commit`` returns. Opening replays the file (the last line for a key wins);
a torn last line from a crash is dropped; the file is rewritten compacted when it holds many
more lines than live keys. Runs on the log's writer thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from meshgate.events.embedded.partition import fsync_directory

OFFSETS_FILE = "consumer-offsets.jsonl"
_COMPACT_SLACK = 10_000
_log = logging.getLogger("meshgate.events.embedded")

GroupKey = tuple[str, str, int]


class GroupOffsets:
    """``(group, topic, partition) -> offset``, durable."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._path = root / OFFSETS_FILE
        self._offsets: dict[tuple[str, str], dict[int, int]] = {}
        self._guard = threading.Lock()  # commits run on the writer thread, reads on the loop
        lines = self._replay()
        if lines > 2 * sum(len(v) for v in self._offsets.values()) + _COMPACT_SLACK:
            self._compact()
        self._handle = open(self._path, "a")  # noqa: SIM115 - lives as long as the log

    def _replay(self) -> int:
        if not self._path.exists():
            return 0
        raw = self._path.read_bytes()
        valid_end = 0
        lines = 0
        for line in raw.splitlines(keepends=True):
            try:
                entry = json.loads(line)
                key = (str(entry["g"]), str(entry["t"]), int(entry["p"]))
                offset = int(entry["o"])
            except (ValueError, KeyError, TypeError):
                break
            if not line.endswith(b"\n"):
                break
            self._apply(key, offset)
            valid_end += len(line)
            lines += 1
        if valid_end < len(raw):
            _log.warning("%s: dropping %d bytes of torn tail", self._path, len(raw) - valid_end)
            with open(self._path, "r+b") as handle:
                handle.truncate(valid_end)
                os.fsync(handle.fileno())
        return lines

    def _compact(self) -> None:
        temporary = self._path.with_suffix(".tmp")
        with open(temporary, "w") as handle:
            for (group, topic), partitions in self._offsets.items():
                for partition, offset in partitions.items():
                    handle.write(_line(group, topic, partition, offset))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._path)
        fsync_directory(self._root)

    def commit(self, entries: Iterable[tuple[GroupKey, int]]) -> None:
        staged = list(entries)
        self._handle.write("".join(_line(g, t, p, o) for (g, t, p), o in staged))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        with self._guard:
            for key, offset in staged:
                self._apply(key, offset)

    def _apply(self, key: GroupKey, offset: int) -> None:
        group, topic, partition = key
        if offset >= 0:
            self._offsets.setdefault((group, topic), {})[partition] = offset
            return
        partitions = self._offsets.get((group, topic), {})
        partitions.pop(partition, None)
        if not partitions:
            self._offsets.pop((group, topic), None)

    def of_group(self, group: str, topic: str) -> dict[int, int]:
        with self._guard:
            return dict(self._offsets.get((group, topic), {}))

    def forget_topic(self, topic: str) -> None:
        """Drop every group's offsets of a deleted topic (tombstones: offset -1)."""
        with self._guard:
            tombstones = [
                ((group, name, partition), -1)
                for (group, name), partitions in self._offsets.items()
                if name == topic
                for partition in partitions
            ]
        if tombstones:
            self.commit(tombstones)

    def close(self) -> None:
        self._handle.close()


def _line(group: str, topic: str, partition: int, offset: int) -> str:
    return json.dumps({"g": group, "t": topic, "p": partition, "o": offset}) + "\n"
