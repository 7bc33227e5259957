"""The built-in CA's certificate work: mesh roots, workload certificates, reading them back.

* ``generate_root``: a self-signed root per mesh (ECDSA P-256, or RSA with ``rsa_bits``),
  subject ``O=meshgate, OU=Mesh, CN=<mesh>``, URI SAN ``spiffe://<mesh>``;
* ``load_provided``: a user's CA pair, checked (CA=true, keyCertSign, key matches);
* ``issue_workload``: a leaf signed by the root, ECDSA P-256, for client and server use, with
  URI SANs (SPIFFE id first) and DNS SANs, living ``ttl_seconds``;
* ``needs_rotation``: true from 2/3 of a certificate's lifetime on;
* ``spiffe_ids_of`` / ``uri_sans_of``: what a certificate claims.

Every function takes ``now`` so callers (and tests) control time.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
CLOCK_SKEW = datetime.timedelta(seconds=10)
ROTATE_AT = 2 / 3


@dataclass(frozen=True, slots=True)
class RootCA:
    """A mesh root: certificate and private key as PEM text."""

    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class WorkloadCert:
    """A workload certificate, its key, and when it is valid."""

    cert: str
    key: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    uris: tuple[str, ...]

    def needs_rotation(self, now: datetime.datetime) -> bool:
        return _past_rotation_point(self.not_before, self.not_after, now)


def generate_root(
    mesh: str,
    *,
    now: datetime.datetime,
    ttl_seconds: float = 10 * 365 * 86400,
    rsa_bits: int | None = None,
) -> RootCA:
    """A new self-signed root CA for ``mesh``."""
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        if rsa_bits
        else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshgate"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Mesh"),
            x509.NameAttribute(NameOID.COMMON_NAME, mesh),
        ]
    )
    cert = (
        certificate_builder(subject, subject, key.public_key(), now, ttl_seconds)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{mesh}")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return RootCA(cert=_cert_pem(cert), key=_key_pem(key))


def load_provided(cert_pem: str, key_pem: str) -> RootCA:
    """A user-provided CA, checked; ``ValueError`` says what is wrong with it."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except ValueError as exc:
        raise ValueError(f"cannot read the provided CA: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the provided CA key must be an EC or RSA key")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ValueError("the provided certificate is not a CA (basicConstraints CA=true)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise ValueError("the provided CA lacks the keyCertSign key usage")
    except x509.ExtensionNotFound:
        pass
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise ValueError("the provided key does not belong to the provided certificate")
    return RootCA(cert=cert_pem, key=key_pem)


def issue_workload(
    root: RootCA,
    uris: list[str],
    *,
    now: datetime.datetime,
    ttl_seconds: float = 86400,
    dns_names: list[str] | None = None,
    common_name: str | None = None,
) -> WorkloadCert:
    """A workload certificate for ``uris`` (SPIFFE id first), signed by ``root``."""
    if not uris:
        raise ValueError("a workload certificate needs at least one URI SAN")
    root_cert = x509.load_pem_x509_certificate(root.cert.encode())
    root_key = serialization.load_pem_private_key(root.key.encode(), password=None)
    if not isinstance(root_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the CA key must be an EC or RSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.DNSName(name) for name in dns_names or []]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (common_name or uris[0])[:64])])
    builder = (
        certificate_builder(subject, root_cert.subject, key.public_key(), now, ttl_seconds)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
    )
    cert = builder.sign(root_key, hashes.SHA256())
    return WorkloadCert(
        cert=_cert_pem(cert),
        key=_key_pem(key),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        uris=tuple(uris),
    )


def needs_rotation(cert_pem: str, now: datetime.datetime) -> bool:
    """True once ``now`` is past 2/3 of the certificate's lifetime (or it has expired)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return _past_rotation_point(cert.not_valid_before_utc, cert.not_valid_after_utc, now)


def uri_sans_of(cert_pem: str) -> list[str]:
    """Every URI SAN of the (first) certificate in ``cert_pem``, in order."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def spiffe_ids_of(cert_pem: str) -> list[str]:
    """The SPIFFE ids (``spiffe://…`` URI SANs) a certificate claims."""
    return [uri for uri in uri_sans_of(cert_pem) if uri.startswith("spiffe://")]


def issued_by(cert_pem: str, root: RootCA) -> bool:
    """Whether ``cert_pem`` was signed by ``root``'s key."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    root_cert = x509.load_pem_x509_certificate(root.cert.encode())
    try:
        cert.verify_directly_issued_by(root_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# --------------------------------------------------------------------------- helpers


def _past_rotation_point(
    not_before: datetime.datetime, not_after: datetime.datetime, now: datetime.datetime
) -> bool:
    return now >= not_before + (not_after - not_before) * ROTATE_AT


def certificate_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    now: datetime.datetime,
    ttl_seconds: float,
) -> x509.CertificateBuilder:
    """A certificate's common part: names, key, random serial, validity with clock skew."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(seconds=ttl_seconds))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _public_der(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
