"""Make and read X.509 certificates (PEM text) for tests, the CLI and the demo.

``generate_self_signed`` makes a stand-alone certificate/key pair; ``generate_ca`` and
``issue`` make a small private CA and leaf certificates signed by it (usable by servers and
clients: both ``serverAuth`` and ``clientAuth`` are allowed).  ``cert_names`` and
``cert_not_after`` read a certificate back.  Nothing here is on the proxy's hot path.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_LEAF_USAGES = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA certificate and its private key, both as PEM text."""

    cert: str
    key: str


def generate_self_signed(
    names: list[str], *, key_type: KeyType = "ec", valid_days: int = 365
) -> tuple[str, str]:
    """A self-signed leaf certificate for ``names`` (DNS names or IPs): ``(cert PEM, key PEM)``."""
    key = _new_key(key_type)
    subject = _name(names[0] if names else "meshgate")
    builder = _builder(subject, subject, key, valid_days).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    builder = _with_leaf_extensions(builder, key, names)
    cert = builder.sign(key, hashes.SHA256())
    return _cert_pem(cert), _key_pem(key)


def generate_ca(
    common_name: str = "meshgate CA", *, key_type: KeyType = "ec", valid_days: int = 3650
) -> CertificateAuthority:
    """A new self-signed root CA."""
    key = _new_key(key_type)
    subject = _name(common_name)
    builder = (
        _builder(subject, subject, key, valid_days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())
    return CertificateAuthority(cert=_cert_pem(cert), key=_key_pem(key))


def issue(
    ca: CertificateAuthority,
    names: list[str],
    *,
    key_type: KeyType = "ec",
    valid_days: int = 365,
) -> tuple[str, str]:
    """A leaf certificate for ``names`` signed by ``ca``: ``(cert PEM, key PEM)``."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the CA key must be an EC or RSA key")
    key = _new_key(key_type)
    builder = (
        _builder(_name(names[0] if names else "meshgate"), ca_cert.subject, key, valid_days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    builder = _with_leaf_extensions(builder, key, names)
    cert = builder.sign(ca_key, hashes.SHA256())
    return _cert_pem(cert), _key_pem(key)


def cert_names(pem: str) -> list[str]:
    """The names a certificate is for: its subject alternative names, then its common name."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        names.extend(san.get_values_for_type(x509.DNSName))
        names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        common_name = value if isinstance(value, str) else value.decode()
        if common_name not in names:
            names.append(common_name)
    return names


def cert_not_after(pem: str) -> datetime.datetime:
    """When the (first) certificate in ``pem`` expires, as an aware UTC datetime."""
    return x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc


# --------------------------------------------------------------------------- helpers


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: PrivateKey, valid_days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )


def _with_leaf_extensions(
    builder: x509.CertificateBuilder, key: PrivateKey, names: list[str]
) -> x509.CertificateBuilder:
    builder = builder.add_extension(_LEAF_USAGES, critical=False).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False
        )
    return builder


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
