"""Kong ``Consumer`` (with its credentials, kept as loosely checked records) and ``Plugin``.

Credentials belong to auth plugins (key-auth, basic-auth, jwt, hmac-auth, acl, oauth2,
mtls-auth); until those plugins own their schemas, a consumer keeps them as plain records under
``credentials[<kind>]`` where ``<kind>`` is Kong's table name (``keyauth_credentials`` …).  The
fields a record needs in order to mean anything are required here: meshgate never invents
secrets (Kong would generate random ones, which makes a declarative file compile differently
each time).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from meshgate.resources.kong_common import (
    EntityViolations,
    ForeignKey,
    KongEntity,
    Loc,
    Tags,
    Timestamp,
    Utf8Name,
    UUIDStr,
)
from meshgate.resources.kong_services import Protocol

# credential kind (Kong DAO / declarative key) -> fields a record must carry
CREDENTIAL_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "keyauth_credentials": ("key",),
    "basicauth_credentials": ("username", "password"),
    "hmacauth_credentials": ("username", "secret"),
    "jwt_secrets": ("key",),
    "acls": ("group",),
    "oauth2_credentials": ("name", "client_id", "client_secret"),
    "mtls_auth_credentials": ("subject_name",),
}
# credential kind -> the field that must be unique across all consumers (Kong's unique keys)
CREDENTIAL_UNIQUE_FIELD: dict[str, str] = {
    "keyauth_credentials": "key",
    "basicauth_credentials": "username",
    "hmacauth_credentials": "username",
    "jwt_secrets": "key",
    "oauth2_credentials": "client_id",
}
CREDENTIAL_KINDS = tuple(CREDENTIAL_REQUIRED_FIELDS)


def credential_problems(kind: str, record: Any) -> list[tuple[Loc, str]]:
    """What is wrong with one credential record, located inside the record."""
    if not isinstance(record, dict):
        return [((), "expected a record")]
    problems: list[tuple[Loc, str]] = []
    for field in CREDENTIAL_REQUIRED_FIELDS[kind]:
        value = record.get(field)
        if value is None:
            problems.append(((field,), "required field missing"))
        elif not isinstance(value, str) or not value:
            problems.append(((field,), "expected a non-empty string"))
    if "tags" in record and not (
        isinstance(record["tags"], list) and all(isinstance(t, str) for t in record["tags"])
    ):
        problems.append((("tags",), "expected a list of strings"))
    return problems


class Consumer(KongEntity):
    """Someone who calls the API: ``username`` and/or ``custom_id``, plus credentials."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    username: str | None = Field(default=None, min_length=1)
    custom_id: str | None = Field(default=None, min_length=1)
    # credential kind -> records; each record gets an ``id`` when loaded from a file
    credentials: dict[str, tuple[dict[str, Any], ...]] = Field(default_factory=dict)
    tags: Tags = ()

    @model_validator(mode="before")
    @classmethod
    def _gather_credentials(cls, data: Any) -> Any:
        """Nested ``keyauth_credentials: [...]`` etc. move under ``credentials``.

        Every credential problem is raised here at once (with the consumer-level "username or
        custom_id" rule, so a consumer with both kinds of problems shows all of them).
        """
        if not isinstance(data, dict):
            return data
        kinds = [kind for kind in CREDENTIAL_KINDS if kind in data]
        gathered: dict[str, Any] = {}
        problems: list[tuple[Loc, str]] = []
        given = data.get("credentials")
        if isinstance(given, dict):
            for kind, records in given.items():
                problems += _records_problems(kind, records, ("credentials", kind))
                gathered[kind] = records
        for kind in kinds:
            records = data[kind]
            if records is None:
                continue
            problems += _records_problems(kind, records, (kind,))
            if isinstance(records, list):
                gathered[kind] = (*gathered.get(kind, ()), *records)
        if problems:
            if data.get("username") is None and data.get("custom_id") is None:
                problems.insert(0, ((), _NEED_A_NAME))
            raise EntityViolations(problems)
        if not kinds:
            return data
        rest = {k: v for k, v in data.items() if k not in kinds}
        return {**rest, "credentials": gathered}

    @model_validator(mode="after")
    def _check(self) -> Consumer:
        if self.username is None and self.custom_id is None:
            raise EntityViolations([((), _NEED_A_NAME)])
        return self


_NEED_A_NAME = "at least one of these fields must be non-empty: 'custom_id', 'username'"


def _records_problems(kind: str, records: Any, loc: Loc) -> list[tuple[Loc, str]]:
    if kind not in CREDENTIAL_REQUIRED_FIELDS:
        return [(loc, "unknown credential kind")]
    if not isinstance(records, list | tuple):
        return [(loc, "expected a list")]
    return [
        ((*loc, index, *where), message)
        for index, record in enumerate(records)
        for where, message in credential_problems(kind, record)
    ]


# --------------------------------------------------------------------------- plugin


def _check_plugin_name(value: str) -> str:
    if not value or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise ValueError(f"invalid plugin name '{value}'")
    return value


def _none_to_empty_map(value: Any) -> Any:
    return {} if value is None else value


def _dedupe(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(dict.fromkeys(value))
    return value


PluginName = Annotated[str, AfterValidator(_check_plugin_name)]
Ordering = dict[Literal["before", "after"], dict[Literal["access"], tuple[PluginName, ...]]]


class Plugin(KongEntity):
    """A configured plugin; its scope is any combination of route/service/consumer (or global)."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    name: PluginName
    instance_name: Utf8Name | None = None
    route: ForeignKey | None = None
    service: ForeignKey | None = None
    consumer: ForeignKey | None = None
    config: Annotated[dict[str, Any], BeforeValidator(_none_to_empty_map)] = Field(
        default_factory=dict
    )
    protocols: Annotated[tuple[Protocol, ...], BeforeValidator(_dedupe), Field(min_length=1)] = (
        "grpc",
        "grpcs",
        "http",
        "https",
    )
    enabled: bool = True
    ordering: Ordering | None = None
    tags: Tags = ()
