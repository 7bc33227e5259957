"""Dataplanes that vanished: when each went offline, and which are old enough to delete.

A sidecar that disconnects without a ``bye`` keeps its Dataplane resource (it may come
back), and its disconnect time is kept in the store as a ``mesh_dp_offline`` entity (id
``<mesh>/<name>``), so a restarted control plane still knows it.  Re-admission deletes the
record in the transaction that writes the Dataplane.  A control plane that crashed saw
nobody leave: once restarted, it records every Dataplane that has not reconnected within
``DEFAULT_RECONNECT_GRACE`` as offline since the restart.  As Kuma does in universal mode, a
Dataplane offline for longer than the cleanup age (72 h by default) is deleted: ``expired``
lists the candidates and ``delete`` removes a Dataplane with its record.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshgate.controlplane.distribution.storage import entity_id, entity_type
from meshgate.store.api import Store, Transaction

OFFLINE_TYPE = "mesh_dp_offline"
DEFAULT_CLEANUP_AGE = 72 * 3600.0
"""Seconds a dataplane may stay offline before its resource is deleted (Kuma's 72 h)."""
DEFAULT_CLEANUP_INTERVAL = 60.0
DEFAULT_RECONNECT_GRACE = 300.0
"""Seconds a restarted control plane waits for the dataplanes it finds in the store to
reconnect before recording the others offline (Kuma's dataplane idle timeout, 5 min)."""
Key = tuple[str, str]  # (mesh, dataplane name)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_age(text: str) -> float | None:
    """``90s``, ``30m``, ``72h``, ``3d`` or plain seconds → seconds; ``0``/``off`` → None
    (never delete).  ``ValueError`` for anything else."""
    value = text.strip().lower()
    if value in ("0", "off", "never"):
        return None
    number, unit = (value[:-1], value[-1]) if value[-1:] in _UNITS else (value, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"not a positive duration: {text!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class OfflineRecord:
    key: Key
    since: float  # epoch seconds of the disconnect


async def record_offline(store: Store, key: Key, since: float) -> None:
    mesh, name = key
    doc = {"id": entity_id(mesh, name), "mesh": mesh, "name": name, "since": since}
    await store.upsert(OFFLINE_TYPE, entity_id(mesh, name), doc, unique_keys=())


async def forget_offline(tx: Transaction, key: Key) -> None:
    """Drop the record of ``key`` (the dataplane is back); nothing happens when there is none."""
    await tx.delete(OFFLINE_TYPE, entity_id(*key))


async def offline_records(store: Store) -> list[OfflineRecord]:
    found: list[OfflineRecord] = []
    offset: str | None = None
    while True:
        page = await store.list(OFFLINE_TYPE, size=1000, offset=offset)
        for doc in page.data:
            try:
                found.append(
                    OfflineRecord((str(doc["mesh"]), str(doc["name"])), float(doc["since"]))
                )
            except (KeyError, TypeError, ValueError):
                continue
        if page.next_offset is None:
            return found
        offset = page.next_offset


def expired(records: list[OfflineRecord], now: float, cleanup_age: float) -> list[OfflineRecord]:
    """The records older than ``cleanup_age`` at ``now``."""
    return [record for record in records if now - record.since > cleanup_age]


async def delete_offline(tx: Transaction, key: Key) -> bool:
    """Delete the Dataplane ``key`` and its record; True when the Dataplane existed."""
    await forget_offline(tx, key)
    return await tx.delete(entity_type("dataplanes"), entity_id(*key))
