"""Consumer groups of the embedded log: an in-process coordinator (one node, many members).

Members of a group split the partitions of their topics: for each topic, its partitions are
dealt round-robin over the members subscribed to it, in join order. Every join and leave
re-deals and wakes the members' pending polls. A member starts a newly assigned partition at
the group's committed offset (or ``auto_offset_reset``) and commits its positions explicitly,
so in steady state every record goes to exactly one member.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

from meshgate.events.api import ConsumedRecord, OffsetReset

if TYPE_CHECKING:
    from meshgate.events.embedded.log import EmbeddedEventLog

TopicPartition = tuple[str, int]
_member_ids = itertools.count(1)


class EmbeddedGroupMember:
    """A ``GroupMember`` of the embedded log."""

    def __init__(
        self, coordinator: GroupCoordinator, group: str, topics: list[str], reset: OffsetReset
    ) -> None:
        self._coordinator = coordinator
        self._group = group
        self.topics = topics
        self.member_id = f"{group}-{next(_member_ids)}"
        self._reset = reset
        self._assigned: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._wake: asyncio.Future[None] | None = None
        self._next_start = 0
        self.active = True

    @property
    def group(self) -> str:
        return self._group

    def assignment(self) -> list[TopicPartition]:
        return list(self._assigned)

    def reassign(self, partitions: list[TopicPartition]) -> None:
        self._assigned = partitions
        self._positions = {k: v for k, v in self._positions.items() if k in partitions}
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _position(self, key: TopicPartition) -> int:
        known = self._positions.get(key)
        if known is not None:
            return known
        log = self._coordinator.log
        topic, partition = key
        committed = (await log.committed(self._group, topic)).get(partition)
        end = await log.latest(topic, partition)
        if committed is None or committed > end:
            committed = end if self._reset == "latest" else await log.earliest(topic, partition)
        self._positions[key] = committed
        return committed

    async def poll(self, max_records: int = 500, max_wait: float = 1.0) -> list[ConsumedRecord]:
        """Records from the assigned partitions, waiting up to ``max_wait`` when there are none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        log = self._coordinator.log
        while self.active:
            records: list[ConsumedRecord] = []
            assigned = self._assigned
            start = self._next_start % len(assigned) if assigned else 0
            self._next_start += 1
            for key in assigned[start:] + assigned[:start]:
                position = await self._position(key)
                if position >= await log.latest(*key):
                    continue
                fetched = await log.fetch(*key, position, max_records=max_records - len(records))
                if fetched.records and key in self._positions:
                    self._positions[key] = fetched.records[-1].offset + 1
                    records.extend(fetched.records)
                if len(records) >= max_records:
                    break
            remaining = deadline - loop.time()
            if records or remaining <= 0:
                return records
            self._wake = loop.create_future()
            await log.wait_for_data(assigned, self._positions, remaining, self._wake)
        return []

    async def commit(self) -> None:
        owned = {k: v for k, v in self._positions.items() if k in self._assigned}
        if owned:
            await self._coordinator.log.commit(self._group, owned)

    async def leave(self) -> None:
        if self.active:
            self.active = False
            self._assigned = []
            self._coordinator.leave(self)
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)


class GroupCoordinator:
    """Memberships of every group of one embedded log."""

    def __init__(self, log: EmbeddedEventLog) -> None:
        self.log = log
        self._groups: dict[str, list[EmbeddedGroupMember]] = {}

    def join(self, group: str, topics: list[str], reset: OffsetReset) -> EmbeddedGroupMember:
        member = EmbeddedGroupMember(self, group, topics, reset)
        self._groups.setdefault(group, []).append(member)
        self._rebalance(group)
        return member

    def leave(self, member: EmbeddedGroupMember) -> None:
        members = self._groups.get(member.group, [])
        if member in members:
            members.remove(member)
        if not members:
            self._groups.pop(member.group, None)
        self._rebalance(member.group)

    def _rebalance(self, group: str) -> None:
        members = self._groups.get(group, [])
        shares: dict[str, list[TopicPartition]] = {m.member_id: [] for m in members}
        topics = sorted({t for m in members for t in m.topics})
        for topic in topics:
            subscribed = [m for m in members if topic in m.topics]
            for partition in range(self.log.partition_count(topic)):
                owner = subscribed[partition % len(subscribed)]
                shares[owner.member_id].append((topic, partition))
        for member in members:
            member.reassign(shares[member.member_id])

    async def close(self) -> None:
        for members in list(self._groups.values()):
            for member in list(members):
                await member.leave()
