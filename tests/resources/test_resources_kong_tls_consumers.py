"""Kong Certificate / SNI / CA Certificate, Consumer and Plugin models."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
import resources_certs as certs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ValidationError

from meshgate.resources.kong import SNI, CACertificate, Certificate, Consumer, Plugin
from meshgate.resources.violations import violations_from


def problems(
    model: type[BaseModel], data: dict[str, Any], now: float | None = None
) -> dict[str, str]:
    try:
        model.model_validate(data, context={"now": now} if now is not None else None)
    except ValidationError as exc:
        return {v.path: v.message for v in violations_from(exc, "")}
    return {}


# --------------------------------------------------------------------------- certificates


def test_certificate_pair_accepted_with_alternate_of_other_type() -> None:
    ec_pair, rsa_pair = certs.leaf(("a.example.com",)), certs.leaf(("a.example.com",), "rsa")
    data = {
        "cert": ec_pair.cert,
        "key": ec_pair.key,
        "cert_alt": rsa_pair.cert,
        "key_alt": rsa_pair.key,
    }
    assert problems(Certificate, data) == {}


def test_certificate_rejections_are_each_located() -> None:
    one, other = certs.leaf(("one.example.com",)), certs.leaf(("other.example.com",))
    assert problems(Certificate, {"cert": "nope", "key": one.key}).keys() == {"cert"}
    assert problems(Certificate, {"cert": one.cert, "key": "nope"}).keys() == {"key"}
    mismatch = problems(Certificate, {"cert": one.cert, "key": other.key})
    assert mismatch == {"key": "'cert' does not match 'key'"}
    lonely = problems(Certificate, {"cert": one.cert, "key": one.key, "cert_alt": other.cert})
    assert "key_alt" in lonely
    same_type = problems(
        Certificate,
        {"cert": one.cert, "key": one.key, "cert_alt": other.cert, "key_alt": other.key},
    )
    assert "different type" in same_type["cert_alt"]
    alt_mismatch = problems(
        Certificate,
        {
            "cert": one.cert,
            "key": one.key,
            "cert_alt": certs.leaf(("x",), "rsa").cert,
            "key_alt": other.key,
        },
    )
    assert alt_mismatch["key_alt"] == "'cert_alt' does not match 'key_alt'"


def test_certificate_vault_references_are_left_to_the_compiler() -> None:
    # Kong's referenceable fields: a reference, and every check involving it, is not judged
    assert problems(Certificate, {"cert": "{vault://env/cert}", "key": "{vault://env/key}"}) == {}
    found = problems(Certificate, {"cert": "not a pem", "key": "{vault://env/key}"})
    assert set(found) == {"cert"}


def test_sni_names() -> None:
    assert problems(SNI, {"name": "*.example.com"}) == {}
    assert problems(SNI, {"name": "example.*"}) == {}
    assert "must not be an IP" in problems(SNI, {"name": "10.1.1.1"})["name"]
    assert "must not have a port" in problems(SNI, {"name": "a.com:443"})["name"]
    assert "wildcard" in problems(SNI, {"name": "a.*.com"})["name"]


def test_ca_certificate_digest_is_computed() -> None:
    ca = CACertificate(cert=certs.ca().cert)
    der = x509.load_pem_x509_certificate(ca.cert.encode()).public_bytes(serialization.Encoding.DER)
    assert ca.cert_digest == hashlib.sha256(der).hexdigest()


def test_ca_certificate_rules() -> None:
    leaf = certs.leaf(("a.example.com",))
    assert "CA" in problems(CACertificate, {"cert": leaf.cert})["cert"]
    two = certs.ca().cert + certs.ca("second CA").cert
    assert "only one certificate" in problems(CACertificate, {"cert": two})["cert"]
    wrong_digest = problems(CACertificate, {"cert": certs.ca().cert, "cert_digest": "00"})
    assert wrong_digest.keys() == {"cert_digest"}
    assert "invalid certificate" in problems(CACertificate, {"cert": "garbage"})["cert"]


def test_ca_certificate_expiry_uses_the_context_clock() -> None:
    expiry = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    expiring = certs.ca("expiring CA", not_after=expiry)
    before, after = expiry.timestamp() - 10, expiry.timestamp() + 10
    assert problems(CACertificate, {"cert": expiring.cert}, now=before) == {}
    assert "expired" in problems(CACertificate, {"cert": expiring.cert}, now=after)["cert"]


# --------------------------------------------------------------------------- consumers


def test_consumer_needs_username_or_custom_id() -> None:
    assert "at least one of" in problems(Consumer, {})[""]
    assert problems(Consumer, {"custom_id": "c-1"}) == {}


def test_consumer_gathers_credentials_and_checks_them_loosely() -> None:
    consumer = Consumer.model_validate(
        {"username": "u", "keyauth_credentials": [{"key": "k"}], "acls": [{"group": "g"}]}
    )
    assert consumer.credentials == {
        "keyauth_credentials": ({"key": "k"},),
        "acls": ({"group": "g"},),
    }
    found = problems(
        Consumer,
        {
            "keyauth_credentials": [{}],
            "basicauth_credentials": [{"username": "b", "password": 5}],
            "acls": "admins",
            "jwt_secrets": [{"key": "iss"}],
        },
    )
    assert found == {
        "": "at least one of these fields must be non-empty: 'custom_id', 'username'",
        "keyauth_credentials[0].key": "required field missing",
        "basicauth_credentials[0].password": "expected a non-empty string",
        "acls": "expected a list",
    }
    assert problems(Consumer, {"username": "u", "credentials": {"magic": []}}) == {
        "credentials.magic": "unknown credential kind"
    }


# --------------------------------------------------------------------------- plugins


def test_plugin_defaults_and_rules() -> None:
    plugin = Plugin(name="rate-limiting")
    assert plugin.enabled is True
    assert plugin.protocols == ("grpc", "grpcs", "http", "https")
    assert plugin.config == {}
    assert Plugin.model_validate({"name": "cors", "config": None}).config == {}
    assert "invalid plugin name" in problems(Plugin, {"name": "Bad Name"})["name"]
    assert "protocols" in problems(Plugin, {"name": "cors", "protocols": []})
    assert (
        problems(Plugin, {"name": "cors", "ordering": {"before": {"access": ["key-auth"]}}}) == {}
    )
    assert "ordering.sideways" in problems(Plugin, {"name": "cors", "ordering": {"sideways": {}}})


@pytest.mark.parametrize(
    "ref", ["svc", {"id": "2f1b5b0e-5d0e-4d8b-9b4a-3e0b8a6d3c11"}, {"name": "svc"}]
)
def test_plugin_references_accept_kong_forms(ref: Any) -> None:
    plugin = Plugin.model_validate({"name": "cors", "service": ref})
    assert isinstance(plugin.service, str)
