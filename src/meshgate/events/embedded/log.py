"""``EmbeddedEventLog``: the default, on-disk ``EventLog`` of one process.

Durability (fsync policy): a produce call returns only after its records were written and
fsynced (fdatasync). Produces are group-committed (``committer``): while one round is being
written and synced, new produces queue up and the next round writes all of them and syncs each
touched partition once, so concurrent producers share fsyncs. Records become visible to fetch
only once synced (the high watermark), so a reader never sees a record a crash could take back.
Committed group offsets and the topic catalog are fsynced before their calls return too.
``acks="none"`` returns once the records are queued (offset -1); they are still fsynced.

Where the disk work runs: produces are written by the event loop (a page-cache write per
partition per round) and synced by the log's fsync process (``syncer``), which the loop does not
wait for. Segment rolls, topic and offset changes, retention, and every round while that process
is not ready or is gone, run on one dedicated writer thread; reads on a small reader pool. The
loop's write waits only when the kernel throttles dirty pages (records arriving faster than the
disk takes them, for long), and then it slows every request of the loop, not only produces.
In-memory maps (topics, partitions) are only changed on the event loop. Long-polling fetches
wait on ``wakeups`` that each round resolves.

One process: the log directory is locked (``lock``, flock) by the process that opens it; a
second opener gets ``LogLocked``. Several gateway workers share one embedded log by running it
in one process (the supervisor) and reaching it from the others (not built here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from meshgate.events.api import (
    DEFAULT_MAX_RECORD_BYTES,
    Acks,
    FetchResult,
    GroupMember,
    OffsetReset,
    ProduceRecord,
    RecordMetadata,
    TopicInfo,
)
from meshgate.events.embedded import catalog
from meshgate.events.embedded.committer import GroupCommitter, unwatched
from meshgate.events.embedded.group_offsets import GroupOffsets
from meshgate.events.embedded.groups import GroupCoordinator
from meshgate.events.embedded.partition import PartitionLog
from meshgate.events.embedded.placement import pending_record, place_records
from meshgate.events.embedded.syncer import FsyncProcess
from meshgate.events.embedded.wakeups import Wakeups
from meshgate.events.embedded.writer import SerialWriter
from meshgate.events.errors import (
    BrokerUnavailable,
    InvalidTopic,
    OffsetOutOfRange,
    TopicAlreadyExists,
    UnknownPartition,
    UnknownTopic,
)
from meshgate.events.partitioner import StickyPartitioner
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.events.embedded")
T = TypeVar("T")
# the fsync process says ready in ~20 ms; open waits at most this long (rounds run on the writer
# thread until it is ready)
FSYNC_START_SECONDS = 5.0
TopicPartition = tuple[str, int]
Partitions = dict[TopicPartition, PartitionLog]


class EmbeddedEventLog:
    """See the module docstring. Open with ``await EmbeddedEventLog.open(path)``."""

    def __init__(
        self,
        root: Path,
        *,
        auto_create_topics: bool,
        default_partitions: int,
        max_record_bytes: int,
        segment_bytes: int,
        reader_threads: int,
        retention_check_seconds: float,
    ) -> None:
        self.root = root
        self.retention_check_seconds = retention_check_seconds
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self.max_record_bytes = max_record_bytes
        self.segment_bytes = segment_bytes
        self._loop = asyncio.get_running_loop()
        self._writer = SerialWriter("eventlog-writer")
        self._readers = ThreadPoolExecutor(reader_threads, thread_name_prefix="eventlog-reader")
        self._topics: dict[str, TopicInfo] = {}
        self._partitions: Partitions = {}
        self._wakeups = Wakeups(self._high_watermark_of)
        self._committer = GroupCommitter(self._writer, self._published)
        self._admin_lock = asyncio.Lock()
        self._sticky = StickyPartitioner()
        self._lock: catalog.DirectoryLock | None = None
        self._group_offsets: GroupOffsets | None = None
        self._groups = GroupCoordinator(self)
        self._retention_task: asyncio.Task[None] | None = None
        self._syncer: FsyncProcess | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        root: str | Path,
        *,
        auto_create_topics: bool = False,
        default_partitions: int = 1,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        segment_bytes: int = 64 * 1024 * 1024,
        reader_threads: int = 4,
        retention_check_seconds: float = 300.0,
        fsync_process: bool = True,
    ) -> EmbeddedEventLog:
        """Lock ``root`` (created if missing), load topics, recover every partition.

        Retention (``retention.bytes``/``retention.ms`` topic configs) runs when a segment rolls
        and every ``retention_check_seconds``; it deletes whole sealed segments only.
        ``fsync_process=False``: no fsync process, every round on the writer thread.
        """
        log = cls(
            Path(root),
            auto_create_topics=auto_create_topics,
            default_partitions=default_partitions,
            max_record_bytes=max_record_bytes,
            segment_bytes=segment_bytes,
            reader_threads=reader_threads,
            retention_check_seconds=retention_check_seconds,
        )
        opening = log._writer.submit(log._open_files)
        try:
            log._topics, log._partitions = await asyncio.wrap_future(opening)
        except asyncio.CancelledError:
            # The writer thread opens the files whether or not we wait: close what it opened.
            with contextlib.suppress(Exception):
                log._topics, log._partitions = opening.result()
                log._close_files()
            log._writer.shutdown()
            log._readers.shutdown()
            raise
        except BaseException:
            log._writer.shutdown()
            log._readers.shutdown()
            raise
        if fsync_process:
            log._syncer = FsyncProcess.start(log._loop)
            if log._syncer is not None and not await log._syncer.wait_ready(FSYNC_START_SECONDS):
                _log.warning("the event log's fsync process is not ready: fsync on a thread")
            log._committer.attach(log._syncer)
        log._retention_task = spawn(log._retention_loop(), name="eventlog-retention")
        return log

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retention_check_seconds)
            await self.enforce_retention()

    async def enforce_retention(self) -> int:
        """Apply every topic's retention now; returns how many segments were deleted."""
        partitions = list(self._partitions.values())
        deleted = await self._on_writer(lambda: sum(p.enforce_retention() for p in partitions))
        for partition in partitions:
            self._published(partition)
        return deleted

    async def _on_writer(self, func: Callable[..., T], *args: object) -> T:
        return await self._loop.run_in_executor(self._writer, func, *args)

    def _open_files(self) -> tuple[dict[str, TopicInfo], Partitions]:
        """Writer thread: lock the directory, recover every partition."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = catalog.DirectoryLock(self.root)
        try:
            topics = catalog.load_topics(self.root)
            partitions: Partitions = {}
            for info in topics.values():
                partitions.update(self._open_partitions(info))
            self._group_offsets = GroupOffsets(self.root)
        except BaseException:
            self._lock.release()
            raise
        return topics, partitions

    def _open_partitions(self, info: TopicInfo) -> Partitions:
        return catalog.open_partitions(self.root, info, self.segment_bytes)

    # -- topics ---------------------------------------------------------------------------

    async def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        catalog.validate_topic_name(name)
        if partitions < 1:
            raise InvalidTopic(f"a topic needs at least one partition, got {partitions}")
        info = TopicInfo(name, partitions, catalog.validate_topic_config(config or {}))
        async with self._admin_lock:
            if name in self._topics:
                raise TopicAlreadyExists(name)
            topics = {**self._topics, name: info}
            opened = await self._on_writer(self._create_files, info, topics)
            self._partitions.update(opened)
            self._topics = topics
        return info

    def _create_files(self, info: TopicInfo, topics: dict[str, TopicInfo]) -> Partitions:
        opened = self._open_partitions(info)
        catalog.save_topics(self.root, topics)
        return opened

    async def describe_topic(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise UnknownTopic(name)
        return info

    async def list_topics(self) -> list[str]:
        return sorted(self._topics)

    async def delete_topic(self, name: str) -> None:
        async with self._admin_lock:
            info = await self.describe_topic(name)
            self._topics = {n: t for n, t in self._topics.items() if n != name}
            removed = [self._partitions.pop((name, n)) for n in range(info.partitions)]
            for partition in removed:  # appends still queued fail, and never on the loop
                partition.retire("deleted with its topic")
            for number in range(info.partitions):
                self._wakeups.wake((name, number))
            await self._on_writer(self._delete_files, name, removed, dict(self._topics))

    def _delete_files(
        self, name: str, removed: list[PartitionLog], remaining: dict[str, TopicInfo]
    ) -> None:
        catalog.save_topics(self.root, remaining)
        for partition in removed:
            partition.close()
            shutil.rmtree(partition.directory, ignore_errors=True)
        assert self._group_offsets is not None
        self._group_offsets.forget_topic(name)

    async def _topic_for_write(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is not None:
            return info
        if not self.auto_create_topics:
            raise UnknownTopic(name)
        try:
            return await self.create_topic(name, self.default_partitions)
        except TopicAlreadyExists:
            return self._topics[name]

    def partition_count(self, topic: str) -> int:
        """Partitions of ``topic``, 0 when it does not exist."""
        info = self._topics.get(topic)
        return info.partitions if info else 0

    def partition_log(self, topic: str, partition: int) -> PartitionLog:
        found = self._partitions.get((topic, partition))
        if found is None:
            if topic not in self._topics:
                raise UnknownTopic(topic)
            raise UnknownPartition(topic, partition)
        return found

    # -- produce --------------------------------------------------------------------------

    async def produce(
        self,
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
        timeout: float = 30.0,
    ) -> list[RecordMetadata]:
        if self._closed:
            raise BrokerUnavailable("the embedded event log is closed", retry_after=1.0)
        info = await self._topic_for_write(topic)
        chosen = self._placement(info, records, partition)
        by_partition: dict[int, list[int]] = {}
        for index, number in enumerate(chosen):
            by_partition.setdefault(number, []).append(index)
        futures = {}
        last = len(by_partition) - 1
        for position, (number, indexes) in enumerate(by_partition.items()):
            futures[number] = future = unwatched(self._loop.create_future())
            self._committer.enqueue(
                self.partition_log(topic, number),
                [pending_record(records[i]) for i in indexes],
                future,
                start=position == last,
            )
        if acks == "none":
            return [RecordMetadata(topic, number, -1, -1) for number in chosen]
        try:
            async with asyncio.timeout(timeout):
                placed = {n: await asyncio.shield(f) for n, f in futures.items()}
        except TimeoutError:
            raise BrokerUnavailable(
                f"the embedded log did not store the records within {timeout}s", retry_after=1.0
            ) from None
        result: list[RecordMetadata | None] = [None] * len(records)
        for number, indexes in by_partition.items():
            for index, meta in zip(indexes, placed[number], strict=True):
                result[index] = meta
        return [m for m in result if m is not None]

    def produce_into(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
    ) -> bool:
        """``produce`` without a coroutine (``api.ProduceInto``): queue ``records`` for the next
        group commit and resolve ``future`` once they are fsynced (or with the error). Only for
        an existing topic, acks other than "none" and records that all go to one partition;
        False (nothing done) otherwise. The caller bounds the wait."""
        info = self._topics.get(topic)
        if info is None or self._closed or acks == "none" or not records:
            return False
        chosen = self._placement(info, records, partition)
        number = chosen[0]
        if chosen.count(number) != len(chosen):
            return False
        self._committer.enqueue(self.partition_log(topic, number), list(records), future)
        return True

    def _placement(
        self, info: TopicInfo, records: Sequence[ProduceRecord], partition: int | None
    ) -> list[int]:
        return place_records(info, records, partition, self.max_record_bytes, self._sticky)

    def _published(self, log: PartitionLog) -> None:
        self._wakeups.wake((log.topic, log.partition))

    def _high_watermark_of(self, key: TopicPartition) -> int | None:
        found = self._partitions.get(key)
        return None if found is None else found.high_watermark

    # -- fetch ----------------------------------------------------------------------------

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int = 500,
        max_bytes: int = 1024 * 1024,
        max_wait: float = 0.0,
    ) -> FetchResult:
        log = self.partition_log(topic, partition)
        if offset > log.high_watermark:
            raise OffsetOutOfRange(topic, partition, offset, log.high_watermark)
        if offset >= log.high_watermark and max_wait > 0:
            await self._wakeups.wait([(topic, partition)], {(topic, partition): offset}, max_wait)
            log = self.partition_log(topic, partition)
        if offset >= log.high_watermark:
            return FetchResult([], log.high_watermark, log.log_start_offset)
        records = await self._loop.run_in_executor(
            self._readers, log.read, offset, max_records, max_bytes
        )
        return FetchResult(records, log.high_watermark, log.log_start_offset)

    async def wait_for_data(
        self,
        keys: Sequence[TopicPartition],
        positions: Mapping[TopicPartition, int],
        timeout: float,
        wake: asyncio.Future[None] | None = None,
    ) -> None:
        """Wait until one of ``keys`` has data past its position, ``wake`` fires, or timeout."""
        await self._wakeups.wait(keys, positions, timeout, wake)

    async def offsets_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        log = self.partition_log(topic, partition)
        return await self._loop.run_in_executor(self._readers, log.offset_at_time, timestamp_ms)

    async def earliest(self, topic: str, partition: int) -> int:
        return self.partition_log(topic, partition).log_start_offset

    async def latest(self, topic: str, partition: int) -> int:
        return self.partition_log(topic, partition).high_watermark

    # -- consumer groups ------------------------------------------------------------------

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        for topic, partition in offsets:
            self.partition_log(topic, partition)
        entries = [((group, t, p), o) for (t, p), o in offsets.items()]
        assert self._group_offsets is not None
        await self._on_writer(self._group_offsets.commit, entries)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        await self.describe_topic(topic)
        assert self._group_offsets is not None
        return self._group_offsets.of_group(group, topic)

    async def join_group(
        self, group: str, topics: Sequence[str], *, auto_offset_reset: OffsetReset = "earliest"
    ) -> GroupMember:
        for topic in topics:
            await self._topic_for_write(topic)
        return self._groups.join(group, list(topics), auto_offset_reset)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._retention_task is not None:
            self._retention_task.cancel()
        await self._groups.close()
        await self._committer.drain()
        if self._syncer is not None:
            await self._syncer.close()
        self._wakeups.wake_all()
        await self._on_writer(self._close_files)
        await self._loop.run_in_executor(None, self._readers.shutdown)
        self._writer.shutdown()

    def _close_files(self) -> None:
        for partition in self._partitions.values():
            partition.close()
        if self._group_offsets is not None:
            self._group_offsets.close()
        if self._lock is not None:
            self._lock.release()
