"""Kong TLS entities: ``Certificate`` (cert/key pair, optional alternate pair), ``SNI`` and
``CACertificate``.

Every PEM is parsed with ``cryptography``: a certificate must match its key, an alternate pair
must use a different key type, a CA certificate must be a single, unexpired CA certificate.
The expiry check reads "now" from the validation context key ``now`` (epoch seconds) when
given, so loading is reproducible in tests; otherwise the clock.

A certificate's ``cert``, ``key``, ``cert_alt`` and ``key_alt`` may instead be vault references
(``{vault://env/NAME}``, Kong's "referenceable" fields): such a field, and every check that
involves it, is left to the compiler, which resolves and validates it.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from pydantic import ValidationInfo, model_validator

from meshgate.resources.kong_common import (
    EntityViolations,
    ForeignKey,
    KongEntity,
    Loc,
    SniName,
    Tags,
    Timestamp,
    UUIDStr,
)

_PEM_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"


def load_certificate_chain(pem: str) -> list[x509.Certificate]:
    if pem.startswith("{vault://"):
        raise ValueError("vault references are not supported")
    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise ValueError(f"invalid certificate: {exc}") from None
    return chain


def load_private_key(pem: str) -> Any:
    if pem.startswith("{vault://"):
        raise ValueError("vault references are not supported")
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid key: {exc}") from None


def is_vault_reference(value: object) -> bool:
    """Kong's test for a reference: a whole string ``{vault://...}``."""
    return isinstance(value, str) and value.startswith("{vault://") and value.endswith("}")


def _public_der(public_key: Any) -> bytes:
    data: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _key_type(key: Any) -> str:
    for kind, name in (
        (rsa.RSAPrivateKey, "RSA"),
        (ec.EllipticCurvePrivateKey, "EC"),
        (ed25519.Ed25519PrivateKey, "Ed25519"),
        (ed448.Ed448PrivateKey, "Ed448"),
        (dsa.DSAPrivateKey, "DSA"),
    ):
        if isinstance(key, kind):
            return name
    return type(key).__name__


def _pair_problems(
    cert_field: str, key_field: str, cert_pem: str, key_pem: str
) -> tuple[list[tuple[Loc, str]], Any]:
    """Problems of one cert/key pair and the parsed key (None when it did not parse)."""
    problems: list[tuple[Loc, str]] = []
    leaf = key = None
    try:
        if not is_vault_reference(cert_pem):
            leaf = load_certificate_chain(cert_pem)[0]
    except ValueError as exc:
        problems.append(((cert_field,), str(exc)))
    try:
        if not is_vault_reference(key_pem):
            key = load_private_key(key_pem)
    except ValueError as exc:
        problems.append(((key_field,), str(exc)))
    matched = (
        leaf is None
        or key is None
        or _public_der(leaf.public_key()) == _public_der(key.public_key())
    )
    if not matched:
        problems.append(((key_field,), f"'{cert_field}' does not match '{key_field}'"))
    return problems, key


class Certificate(KongEntity):
    """A certificate (optionally followed by its chain) and its private key, PEM."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    cert: str
    key: str
    cert_alt: str | None = None
    key_alt: str | None = None
    tags: Tags = ()

    @model_validator(mode="after")
    def _check_pems(self) -> Certificate:
        problems, key = _pair_problems("cert", "key", self.cert, self.key)
        if (self.cert_alt is None) != (self.key_alt is None):
            missing = "key_alt" if self.key_alt is None else "cert_alt"
            problems.append(((missing,), "'cert_alt' and 'key_alt' must be set together"))
        elif self.cert_alt is not None and self.key_alt is not None:
            alt_problems, alt_key = _pair_problems(
                "cert_alt", "key_alt", self.cert_alt, self.key_alt
            )
            problems += alt_problems
            if key is not None and alt_key is not None and _key_type(key) == _key_type(alt_key):
                problems.append(
                    (
                        ("cert_alt",),
                        "certificate and alternative certificate need to have "
                        "different type (e.g. RSA and ECDSA)",
                    )
                )
        if problems:
            raise EntityViolations(problems)
        return self


class SNI(KongEntity):
    """A server name (wildcards allowed) that selects a certificate."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    name: SniName
    certificate: ForeignKey | None = None
    tags: Tags = ()


def certificate_digest(pem: str) -> str:
    """sha256 of the (first) certificate's DER encoding, lower-case hex (of a vault
    reference: of its text, so an id derived from it stays stable)."""
    if is_vault_reference(pem):
        return hashlib.sha256(pem.encode()).hexdigest()
    return hashlib.sha256(
        load_certificate_chain(pem)[0].public_bytes(serialization.Encoding.DER)
    ).hexdigest()


class CACertificate(KongEntity):
    """A trusted CA: one PEM certificate with the CA basic constraint, not expired."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    cert: str
    cert_digest: str | None = None
    tags: Tags = ()

    @model_validator(mode="before")
    @classmethod
    def _compute_digest(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and isinstance(data.get("cert"), str)
            and not data.get("cert_digest")
        ):
            try:
                return {**data, "cert_digest": certificate_digest(data["cert"])}
            except ValueError:
                return data  # reported by the after-validator
        return data

    @model_validator(mode="after")
    def _check_ca(self, info: ValidationInfo) -> CACertificate:
        try:
            chain = load_certificate_chain(self.cert)
        except ValueError as exc:
            raise EntityViolations([(("cert",), str(exc))]) from None
        problems: list[tuple[Loc, str]] = []
        if len(chain) != 1 or self.cert.count(_PEM_CERT_BEGIN) != 1:
            problems.append((("cert",), "please submit only one certificate at a time"))
        cert = chain[0]
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            problems.append(
                (
                    ("cert",),
                    'certificate does not appear to be a CA because it is missing the "CA" basic constraint',
                )
            )
        now = _now(info)
        if cert.not_valid_after_utc < now:
            problems.append((("cert",), 'certificate expired, "Not After" time is in the past'))
        if self.cert_digest is not None and self.cert_digest != certificate_digest(self.cert):
            problems.append((("cert_digest",), "does not match the sha256 digest of 'cert'"))
        if problems:
            raise EntityViolations(problems)
        return self


def _now(info: ValidationInfo) -> datetime:
    context = info.context if isinstance(info.context, dict) else {}
    now = context.get("now")
    return datetime.fromtimestamp(now if isinstance(now, int | float) else time.time(), tz=UTC)
