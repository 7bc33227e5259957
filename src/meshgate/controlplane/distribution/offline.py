"""Dataplanes that vanished: the record of when each went offline, and the cleanup ages.

A sidecar that disconnects without a ``bye`` keeps its Dataplane resource (it may come
back), and its disconnect time is kept in the store as a ``mesh_dp_offline`` entity (id
``<mesh>/<name>``), so every replica and a restarted control plane know it.  Re-admission
deletes the record in the transaction that claims the dataplane's session.  As Kuma does in
universal mode, a Dataplane offline for longer than the cleanup age (72 h by default) is
deleted (see ``replicas`` for how replicas do that without racing each other).

Each record carries a random ``token``: the cleanup deletes a record only if its token is
still the one it judged, so a record written again meanwhile (the dataplane came back and
left again) is never taken for the old one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from meshgate.controlplane.distribution.storage import entity_id

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


def offline_doc(key: Key, since: float) -> dict[str, Any]:
    mesh, name = key
    return {
        "id": entity_id(mesh, name), "mesh": mesh, "name": name, "since": since,
        "token": uuid.uuid4().hex,
    }  # fmt: skip


def record_of(doc: Mapping[str, Any]) -> tuple[Key, float] | None:
    """(key, since) of a stored record; None for a malformed one."""
    try:
        return (str(doc["mesh"]), str(doc["name"])), float(doc["since"])
    except (KeyError, TypeError, ValueError):
        return None


def token_of(doc: Mapping[str, Any]) -> str | None:
    token = doc.get("token")
    return str(token) if token is not None else None
