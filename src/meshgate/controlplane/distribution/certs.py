"""Certificates of the distribution layer: signing sidecars' CSRs, and the DP server's own TLS.

* ``sign_csr``: a workload certificate for the public key of a sidecar's CSR (its private
  key stays on the sidecar), signed by the mesh root, with the URI/DNS SANs the control
  plane decides (what the CSR asks for is ignored; its signature proves key possession);
* ``server_tls``: the DP port's certificate — a control-plane root and a server leaf for
  ``localhost``/``127.0.0.1``/``::1`` plus extra names, kept in the store (documents
  ``mesh_cp_tls``/``dp-server…``) so every control plane on the store and every restart
  present a certificate of the same root (sidecars trust the root, or pin a fingerprint);
  a control plane reached at names the first leaf does not cover gets its own leaf.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshgate.controlplane.ca.certs import (
    RootCA,
    WorkloadCert,
    certificate_builder,
    generate_root,
)
from meshgate.store.api import Store
from meshgate.store.errors import UniqueViolation

TLS_DOC_TYPE = "mesh_cp_tls"
TLS_DOC_ID = "dp-server"
_log = logging.getLogger("meshgate.distribution")


def sign_csr(
    root: RootCA,
    csr_pem: str,
    uris: list[str],
    *,
    now: datetime.datetime,
    ttl_seconds: float,
    dns_names: list[str] | None = None,
    common_name: str | None = None,
) -> WorkloadCert:
    """A workload certificate for the CSR's key; ``ValueError`` for a bad or forged CSR.

    The returned ``WorkloadCert.key`` is empty: the key is the sidecar's.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise ValueError(f"cannot read the CSR: {exc}") from None
    if not csr.is_signature_valid:
        raise ValueError("the CSR's signature does not match its key")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError("the CSR key must be an EC or RSA key")
    root_cert = x509.load_pem_x509_certificate(root.cert.encode())
    root_key = serialization.load_pem_private_key(root.key.encode(), password=None)
    if not isinstance(root_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the CA key must be an EC or RSA key")
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.DNSName(name) for name in dns_names or []]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (common_name or uris[0])[:64])])
    cert = (
        _leaf_builder(subject, root_cert.subject, public_key, now, ttl_seconds)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    return WorkloadCert(
        cert=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key="",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        uris=tuple(uris),
    )


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The DP server's root, leaf certificate and key (PEM), and the leaf's fingerprint."""

    ca_cert: str
    cert: str
    key: str

    @property
    def fingerprint(self) -> str:
        return cert_fingerprint(self.cert)


def cert_fingerprint(cert_pem: str) -> str:
    """``sha256:<hex>`` of a certificate's DER form (what ``meshgate dp --cp-fingerprint`` pins)."""
    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


async def server_tls(
    store: Store, *, now: datetime.datetime, extra_names: tuple[str, ...] = ()
) -> ServerTLS:
    """The DP server's TLS material for a control plane reached at ``extra_names`` (host
    names or IPs) besides ``localhost``: the stored one, created on first use.

    The store keeps one root (the DP CA sidecars are given) and the leaf made with it, for
    the names of the first control plane that started (``mesh_cp_tls``/``dp-server``).  A
    control plane whose names that leaf does not cover gets a leaf of its own signed by the
    same root and kept under an id derived from its set of names, so replicas started with
    the same names present the same certificate (sidecars that pin a fingerprint instead of
    trusting the root can fail over between them).
    """
    names = ("localhost", "127.0.0.1", "::1", *extra_names)
    doc = await _shared_material(store, now, names)
    shared = ServerTLS(str(doc["ca_cert"]), str(doc["cert"]), str(doc["key"]))
    if covers(shared.cert, names):
        return shared
    if "ca_key" not in doc:  # made before roots were kept: no new leaf can be signed
        _log.warning(
            "the stored DP server certificate does not cover %s and its root key was not "
            "kept: delete the %s documents to re-create them", ", ".join(extra_names), TLS_DOC_TYPE
        )  # fmt: skip
        return shared
    ident = f"{TLS_DOC_ID}/{_names_digest(names)}"
    own = await store.get(TLS_DOC_TYPE, ident)
    if own is None:
        root = RootCA(shared.ca_cert, str(doc["ca_key"]))
        cert, key = _issue_server(root, names, now)
        own = {"id": ident, "names": sorted(set(names)), "cert": cert, "key": key}
        try:
            await store.insert(TLS_DOC_TYPE, own, unique_keys=())
        except UniqueViolation:  # another control plane with these names made it first
            own = await store.get(TLS_DOC_TYPE, ident)
            assert own is not None
    return ServerTLS(shared.ca_cert, str(own["cert"]), str(own["key"]))


async def _shared_material(
    store: Store, now: datetime.datetime, names: tuple[str, ...]
) -> dict[str, Any]:
    """The ``dp-server`` document: the root (with its key) and the first leaf."""
    doc = await store.get(TLS_DOC_TYPE, TLS_DOC_ID)
    if doc is not None:
        return doc
    root = generate_root("meshgate-control-plane", now=now)
    cert, key = _issue_server(root, names, now)
    fresh = {"id": TLS_DOC_ID, "ca_cert": root.cert, "ca_key": root.key, "cert": cert, "key": key}
    try:
        await store.insert(TLS_DOC_TYPE, fresh, unique_keys=())
    except UniqueViolation:  # another control plane made it first
        doc = await store.get(TLS_DOC_TYPE, TLS_DOC_ID)
        assert doc is not None
        return doc
    return fresh


def covers(cert_pem: str, names: tuple[str, ...]) -> bool:
    """Whether the certificate's SANs hold every one of ``names`` (host names or IPs)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    held = {name.lower() for name in sans.get_values_for_type(x509.DNSName)}
    held |= {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return all(_normal(name) in held for name in names)


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _names_digest(names: tuple[str, ...]) -> str:
    canonical = "\n".join(sorted({_normal(name) for name in names}))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _issue_server(root: RootCA, names: tuple[str, ...], now: datetime.datetime) -> tuple[str, str]:
    root_cert = x509.load_pem_x509_certificate(root.cert.encode())
    root_key = serialization.load_pem_private_key(root.key.encode(), password=None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshgate control plane")])
    cert = (
        _leaf_builder(subject, root_cert.subject, key.public_key(), now, 10 * 365 * 86400)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _leaf_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    now: datetime.datetime,
    ttl_seconds: float,
) -> x509.CertificateBuilder:
    return (
        certificate_builder(subject, issuer, public_key, now, ttl_seconds)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
