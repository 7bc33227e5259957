"""Kong vault references (``{vault://env/NAME}``) resolved when a config is compiled.

A string that is, as a whole, ``{vault://<vault>/<resource>[/<key>][?<config>][#<version>]}``
is a reference (Kong's syntax).  meshgate bundles Kong's OSS vault, ``env``:

* the environment variable read is ``<prefix><resource>`` with ``-`` turned into ``_`` and
  upper-cased (``{vault://env/my-token}`` reads ``MY_TOKEN``); ``prefix`` comes from the
  reference's query (``?prefix=SECRET_``), else from ``MESHGATE_VAULT_ENV_PREFIX`` (Kong's
  ``vault_env_prefix``), else is empty; version ``#2`` reads ``<NAME>_PREVIOUS``;
* with a key (``{vault://env/db-creds/password}``) the variable holds a JSON object and the
  value is that object's member ``password``.

Plugin configs may hold references anywhere; certificates in ``cert``, ``key``, ``cert_alt``
and ``key_alt`` (Kong's referenceable fields), whose resolved PEMs are then validated as the
Admin API validates plain ones (parse, cert/key match, different alternate key type).

The stored config keeps the reference: only the compiled snapshot holds the secret.  A
reference that cannot be resolved, or a certificate that resolves to bad PEM, is a
``ConfigError`` naming the field, so the running config stays as it was.  Compilation stays a function of its inputs: the environment is passed in
(``os.environ`` unless told otherwise).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import ValidationError

from meshgate.errors import ConfigError, Violation
from meshgate.resources.kong import Certificate, Plugin
from meshgate.resources.violations import violations_from

BUNDLED_VAULTS = frozenset({"env"})
ENV_PREFIX_SETTING = "MESHGATE_VAULT_ENV_PREFIX"
_ENV_CONFIG_FIELDS = frozenset({"prefix"})
CERTIFICATE_FIELDS = ("cert", "key", "cert_alt", "key_alt")
"""A certificate's referenceable fields (kong/db/schema/entities/certificates.lua)."""


class VaultError(ValueError):
    """A reference that is malformed or names a secret that is not there."""


@dataclass(frozen=True, slots=True)
class Reference:
    """The parts of ``{vault://name/resource/key?config#version}``."""

    vault: str
    resource: str
    key: str | None = None
    config: Mapping[str, str] = field(default_factory=dict)
    version: int | None = None


def is_reference(value: object) -> bool:
    """True for a string that is a vault reference as a whole (Kong's test)."""
    return isinstance(value, str) and value.startswith("{vault://") and value.endswith("}")


def parse_reference(text: str) -> Reference:
    """The parts of a reference; ``VaultError`` when it is not a well-formed one."""
    if not is_reference(text):
        raise VaultError(f"not a vault reference: {text!r}")
    url = urlsplit(text[1:-1])
    if not url.netloc:
        raise VaultError("reference has no vault name (expected {vault://env/NAME})")
    resource = url.path.removeprefix("/")
    if not resource:
        raise VaultError("reference has no secret name (expected {vault://env/NAME})")
    version: int | None = None
    if url.fragment:
        if not url.fragment.isdigit():
            raise VaultError(f"reference has an invalid version '#{url.fragment}'")
        version = int(url.fragment)
    key: str | None = None
    parts = resource.split("/")
    if len(parts) > 1:
        resource, key = "/".join(parts[:-1]), parts[-1] or None
    return Reference(
        vault=url.netloc,
        resource=unquote(resource),
        key=unquote(key) if key is not None else None,
        config=dict(parse_qsl(url.query, keep_blank_values=True)),
        version=version,
    )


def env_variable(ref: Reference, default_prefix: str = "") -> str:
    """The environment variable the ``env`` vault reads for ``ref`` (Kong's naming)."""
    prefix = ref.config.get("prefix", default_prefix)
    name = (prefix + ref.resource.replace("-", "_")).upper()
    return f"{name}_PREVIOUS" if ref.version == 2 else name


def resolve_reference(text: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret ``text`` refers to; ``VaultError`` saying why when there is none."""
    env = os.environ if environ is None else environ
    ref = parse_reference(text)
    if ref.vault not in BUNDLED_VAULTS:
        raise VaultError(f"vault '{ref.vault}' is not configured (meshgate bundles: env)")
    unknown = sorted(set(ref.config) - _ENV_CONFIG_FIELDS)
    if unknown:
        raise VaultError(f"unknown env vault config: {', '.join(unknown)}")
    name = env_variable(ref, env.get(ENV_PREFIX_SETTING, ""))
    value = env.get(name)
    if value is None:
        raise VaultError(f"could not resolve {text}: environment variable {name} is not set")
    if ref.key is None:
        return value
    try:
        document = json.loads(value)
    except ValueError:
        raise VaultError(f"could not resolve {text}: {name} does not hold a JSON object") from None
    if not isinstance(document, dict):
        raise VaultError(f"could not resolve {text}: {name} does not hold a JSON object")
    member = document.get(ref.key)
    if member is None:
        raise VaultError(f"could not resolve {text}: {name} has no key '{ref.key}'")
    return member if isinstance(member, str) else json.dumps(member)


def resolve_references(value: Any, path: str, environ: Mapping[str, str] | None = None) -> Any:
    """``value`` (a plugin config, any JSON-like data) with every reference resolved.

    Returns ``value`` itself when it holds no reference.  Raises ``ConfigError`` with one
    violation per unresolvable reference, each at its field path under ``path``
    (``plugins.my-plugin.config.headers[0]``).
    """
    env = os.environ if environ is None else environ
    violations: list[Violation] = []
    resolved = _walk(value, path, env, violations)
    if violations:
        raise ConfigError(violations)
    return resolved


def contains_reference(value: Any) -> bool:
    """True when a reference appears anywhere in ``value``."""
    if isinstance(value, str):
        return is_reference(value)
    if isinstance(value, Mapping):
        return any(contains_reference(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_reference(v) for v in value)
    return False


def _walk(value: Any, path: str, env: Mapping[str, str], violations: list[Violation]) -> Any:
    if isinstance(value, str):
        if not is_reference(value):
            return value
        try:
            return resolve_reference(value, env)
        except VaultError as exc:
            violations.append(Violation(path, str(exc)))
            return value
    if not contains_reference(value):
        return value
    if isinstance(value, Mapping):
        return {k: _walk(v, f"{path}.{k}", env, violations) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_walk(v, f"{path}[{i}]", env, violations) for i, v in enumerate(value)]
        return type(value)(items) if isinstance(value, tuple) else items
    return value


def plugin_config(plugin: Plugin) -> Any:
    """A plugin entity's ``config`` with its references resolved (errors at
    ``plugins.<instance_name or id>.config.<field>``): the compiler's one hook."""
    where = plugin.instance_name or plugin.id
    return resolve_references(plugin.config, f"plugins.{where}.config")


def certificate_fields(certificate: Certificate) -> dict[str, str | None]:
    """A certificate's PEM fields as stored (references unresolved)."""
    return {name: getattr(certificate, name) for name in CERTIFICATE_FIELDS}


def resolved_certificates(
    certificates: tuple[Certificate, ...] | list[Certificate],
    environ: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str | None]]:
    """The PEM fields, resolved, of each certificate that holds a reference (by id).

    Raises ``ConfigError`` with every problem of every certificate: an unresolvable reference
    at ``certificates.<id>.<field>``, a resolved PEM that does not parse, a key that does not
    match its certificate, at the field the Admin API would name for a plain value.
    """
    env = os.environ if environ is None else environ
    resolved: dict[str, dict[str, str | None]] = {}
    violations: list[Violation] = []
    for certificate in certificates:
        fields = certificate_fields(certificate)
        if not any(is_reference(value) for value in fields.values()):
            continue
        where = f"certificates.{certificate.id}"
        problems: list[Violation] = []
        values = _walk(fields, where, env, problems)
        if not problems:
            try:
                Certificate.model_validate({**certificate.model_dump(), **values})
            except ValidationError as exc:
                problems = violations_from(exc, where)
        violations += problems
        resolved[str(certificate.id)] = values
    if violations:
        raise ConfigError(violations)
    return resolved
