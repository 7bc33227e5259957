"""Test certificates made with ``cryptography``: a CA, leaves signed by it, odd cases."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cache
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

KeyType = Literal["ec", "rsa"]
NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2120, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Pem:
    cert: str
    key: str


def _key(kind: KeyType) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@cache
def ca(
    common_name: str = "meshgate test CA",
    not_after: datetime.datetime = NOT_AFTER,
    is_ca: bool = True,
) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


@cache
def leaf(names: tuple[str, ...] = ("example.com",), kind: KeyType = "ec") -> Pem:
    issuer = ca()
    issuer_key = serialization.load_pem_private_key(issuer.key.encode(), password=None)
    issuer_cert = x509.load_pem_x509_certificate(issuer.cert.encode())
    key = _key(kind)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))
