"""Certificates of the distribution layer: signing sidecars' CSRs, and the DP server's own TLS.

* ``sign_csr``: a workload certificate for the public key of a sidecar's CSR (its private
  key stays on the sidecar), signed by the mesh root, with the URI/DNS SANs the control
  plane decides (what the CSR asks for is ignored; its signature proves key possession);
* ``server_tls``: the DP port's certificate — a control-plane root and a server leaf for
  ``localhost``/``127.0.0.1``/``::1`` plus extra names, kept in the store (document
  ``mesh_cp_tls``/``dp-server``) so every control plane on the store and every restart
  present the same certificate (sidecars pin it by fingerprint, or trust the root).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass

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
    """The stored DP-server TLS material, created on first use.

    ``extra_names`` (host names or IPs sidecars use to reach the control plane) are only
    used when the material is created; delete the ``mesh_cp_tls`` document to re-create it.
    """
    doc = await store.get(TLS_DOC_TYPE, TLS_DOC_ID)
    if doc is not None:
        return ServerTLS(str(doc["ca_cert"]), str(doc["cert"]), str(doc["key"]))
    root = generate_root("meshgate-control-plane", now=now)
    fresh = _issue_server(root, ("localhost", "127.0.0.1", "::1", *extra_names), now)
    new_doc = {"id": TLS_DOC_ID, "ca_cert": root.cert, "cert": fresh[0], "key": fresh[1]}
    try:
        await store.insert(TLS_DOC_TYPE, new_doc, unique_keys=())
    except UniqueViolation:  # another control plane made it first
        return await server_tls(store, now=now)
    return ServerTLS(root.cert, fresh[0], fresh[1])


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
