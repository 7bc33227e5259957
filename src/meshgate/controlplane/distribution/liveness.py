"""Who holds which dataplane, and whether it is online: the pure rules of a replicated CP.

Several control-plane instances (replicas) may share one store, as Kuma runs several CPs in
Universal mode on PostgreSQL.  Each replica writes a heartbeat record (``Instance``, entity
``mesh_cp_instance``) every ``heartbeat_interval`` seconds and one ``SessionRecord`` (entity
``mesh_dp_session``, id ``<mesh>/<name>``) per dataplane connected to it.  A replica whose
heartbeat is older than ``dead_after`` seconds (three intervals by default) is dead.

``judge`` decides what one replica says of a dataplane it does not hold itself:

* a session held by a live replica: online, held by that replica, since the admission;
* a session held by a dead replica: offline since that replica's last heartbeat (its
  sidecars may have reconnected elsewhere, which replaces the session);
* no session: offline since its ``mesh_dp_offline`` record, or not judged yet (``since`` is
  None: a dataplane nobody saw leave, recorded once the reconnect grace has passed).

``orphaned`` lists the sessions of dead replicas, which every replica turns into offline
records (see ``replicas``).  Clocks of the replicas are compared, so they should be in sync to
well under ``dead_after`` (NTP), as Kuma assumes too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

INSTANCE_TYPE = "mesh_cp_instance"
SESSION_TYPE = "mesh_dp_session"
DEFAULT_HEARTBEAT_INTERVAL = 5.0
"""Seconds between two heartbeats of a control-plane instance."""
DEAD_AFTER_INTERVALS = 3
"""A replica whose heartbeat is older than this many intervals is dead."""
Key = tuple[str, str]  # (mesh, dataplane name)


def default_dead_after(heartbeat_interval: float) -> float:
    return DEAD_AFTER_INTERVALS * heartbeat_interval


@dataclass(frozen=True, slots=True)
class Instance:
    """A control-plane replica's heartbeat record."""

    id: str
    address: str  # the DP server URL sidecars use
    api: str  # the Mesh API URL
    started: float
    last_seen: float

    def live(self, now: float, dead_after: float) -> bool:
        return now - self.last_seen <= dead_after

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id, "address": self.address, "api": self.api,
            "started": self.started, "lastSeen": self.last_seen,
        }  # fmt: skip

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Instance:
        return cls(
            str(doc["id"]), str(doc.get("address", "")), str(doc.get("api", "")),
            float(doc["started"]), float(doc["lastSeen"]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """Which replica a dataplane is connected to, and since when."""

    key: Key
    cp: str
    connected_since: float

    def document(self) -> dict[str, Any]:
        mesh, name = self.key
        return {
            "id": f"{mesh}/{name}", "mesh": mesh, "name": name,
            "cp": self.cp, "connectedSince": self.connected_since,
        }  # fmt: skip

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> SessionRecord:
        key = (str(doc["mesh"]), str(doc["name"]))
        return cls(key, str(doc["cp"]), float(doc["connectedSince"]))


@dataclass(frozen=True, slots=True)
class Verdict:
    """Online (held by ``cp`` since ``since``) or offline since ``since`` (None: unknown)."""

    online: bool
    cp: str | None = None
    since: float | None = None

    def expired(self, now: float, cleanup_age: float) -> bool:
        """Offline for longer than ``cleanup_age``."""
        return not self.online and self.since is not None and now - self.since > cleanup_age


def judge(
    session: SessionRecord | None,
    instances: Mapping[str, Instance],
    offline_since: float | None,
    *,
    now: float,
    dead_after: float,
    self_id: str,
) -> Verdict:
    """What a replica (``self_id``) that does not hold the dataplane itself says of it."""
    if session is not None and session.cp != self_id:
        owner = instances.get(session.cp)
        if owner is not None and owner.live(now, dead_after):
            return Verdict(True, session.cp, session.connected_since)
        if owner is not None:
            return Verdict(False, session.cp, max(owner.last_seen, session.connected_since))
        return Verdict(False, session.cp, offline_since)
    # no session, or a record of this replica without a local session (about to be
    # released): the offline record says since when
    return Verdict(False, None, offline_since)


@dataclass(frozen=True, slots=True)
class Orphan:
    """A session of a dead replica: offline since ``since``."""

    record: SessionRecord
    since: float


def orphaned(
    sessions: Iterable[SessionRecord],
    instances: Mapping[str, Instance],
    *,
    now: float,
    dead_after: float,
    self_id: str,
) -> list[Orphan]:
    """Sessions whose replica is dead.  A session of a replica without any record is only
    orphaned once older than ``dead_after`` (its record may not be visible yet)."""
    found: list[Orphan] = []
    for record in sessions:
        if record.cp == self_id:
            continue
        owner = instances.get(record.cp)
        if owner is None:
            if now - record.connected_since > dead_after:
                found.append(Orphan(record, now))
        elif not owner.live(now, dead_after):
            found.append(Orphan(record, max(owner.last_seen, record.connected_since)))
    return found


def departed(
    instances: Mapping[str, Instance],
    sessions: Iterable[SessionRecord],
    *,
    now: float,
    dead_after: float,
    self_id: str,
) -> list[str]:
    """Dead replicas that hold no session any more: their records can go."""
    holding = {record.cp for record in sessions}
    return [
        ident
        for ident, instance in instances.items()
        if ident != self_id and ident not in holding and not instance.live(now, dead_after)
    ]
