"""Errors the store raises; the Admin API maps them to Kong's status codes and error bodies."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error raised by a ``Store``."""


class NotFound(StoreError):
    """No entity of ``entity_type`` with ``entity_id`` (Kong: 404, code 6)."""

    def __init__(self, entity_type: str, entity_id: str) -> None:
        self.entity_type = entity_type
        self.entity_id = entity_id
        super().__init__(f"{entity_type} {entity_id!r} not found")


class UniqueViolation(StoreError):
    """``key_name=value`` is already held by ``existing_id`` (Kong: 409, code 5).

    A clash on the primary key is reported with ``key_name == "id"``.
    """

    def __init__(self, entity_type: str, key_name: str, value: str, existing_id: str) -> None:
        self.entity_type = entity_type
        self.key_name = key_name
        self.value = value
        self.existing_id = existing_id
        super().__init__(
            f"UNIQUE violation on {entity_type}.{key_name}={value!r} (held by {existing_id})"
        )


class ForeignKeyMissing(StoreError):
    """A referenced entity does not exist (Kong: 400, code 4).

    The store does not check foreign keys itself; callers raise this when their own check fails.
    """

    def __init__(self, entity_type: str, field: str, missing_type: str, missing_id: str) -> None:
        self.entity_type = entity_type
        self.field = field
        self.missing_type = missing_type
        self.missing_id = missing_id
        super().__init__(
            f"{entity_type}.{field} references {missing_type} {missing_id!r}, which does not exist"
        )


class InvalidQuery(StoreError, ValueError):
    """A list query or write had an argument the store cannot use (size, filter path, tags)."""


class InvalidOffset(InvalidQuery):
    """The pagination offset is malformed or belongs to another query (Kong: 400, code 7)."""


class RevisionGone(StoreError):
    """``changes_since(revision)`` asked for changes already pruned: reload everything instead."""

    def __init__(self, revision: int, oldest_available: int) -> None:
        self.revision = revision
        self.oldest_available = oldest_available
        super().__init__(
            f"changes after revision {revision} were pruned; the oldest base is {oldest_available}"
        )
