"""certs: making certificates and reading their names and expiry back."""

from __future__ import annotations

import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from meshgate.proxy.tls.certs import (
    cert_names,
    cert_not_after,
    generate_ca,
    generate_self_signed,
    issue,
)
from meshgate.proxy.tls.common import load_pem_pairs


def test_self_signed_names_and_expiry() -> None:
    cert, key = generate_self_signed(["api.test", "*.api.test", "127.0.0.1"], valid_days=10)
    assert cert_names(cert) == ["api.test", "*.api.test", "127.0.0.1"]  # CN repeats a SAN
    expires = cert_not_after(cert)
    expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    assert abs(expires - expected) < datetime.timedelta(minutes=1)
    assert "PRIVATE KEY" in key


def test_common_name_is_listed_when_not_a_san() -> None:
    ca = generate_ca("Example Root")
    assert cert_names(ca.cert) == ["Example Root"]


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_issued_certificate_chains_to_its_ca(key_type: str) -> None:
    ca = generate_ca(key_type="ec")
    cert, key = issue(ca, ["svc.internal"], key_type="rsa" if key_type == "rsa" else "ec")
    leaf = x509.load_pem_x509_certificate(cert.encode())
    root = x509.load_pem_x509_certificate(ca.cert.encode())
    leaf.verify_directly_issued_by(root)
    assert cert_names(cert) == ["svc.internal"]
    # the key matches the certificate (OpenSSL checks when loading both)
    load_pem_pairs(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), [(cert, key)], "issued")


def test_a_certificate_not_from_the_ca_does_not_chain() -> None:
    ca, stranger = generate_ca(), generate_ca()
    cert, _ = issue(stranger, ["svc.internal"])
    # same subject name (both default to "meshgate CA"), so only the signature tells them apart
    with pytest.raises(InvalidSignature):
        x509.load_pem_x509_certificate(cert.encode()).verify_directly_issued_by(
            x509.load_pem_x509_certificate(ca.cert.encode())
        )
