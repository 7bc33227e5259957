"""Helpers for the decK tests: find the decK binary, run it, a realistic config with real
certificates, and a canonical form of a config for comparing files that decK wrote."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate.resources import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
DECK_ENV = "MESHGATE_DECK"
CERTIFICATE_ID = "3c5e0f7a-1b2d-4e6f-8a9b-0c1d2e3f4a5b"


def deck_binary() -> Path:
    """decK from ``$MESHGATE_DECK`` or ``.services/bin/deck`` (``bash scripts/tools/deck.sh``)."""
    candidate = Path(os.environ.get(DECK_ENV) or ROOT / ".services" / "bin" / "deck")
    if not candidate.is_file():
        pytest.skip(f"decK is not installed: run `bash scripts/tools/deck.sh` (or set {DECK_ENV})")
    return candidate


def run_deck(deck: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(deck), *args, "--analytics=false"],
        capture_output=True,
        text=True,
        timeout=40,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp"), "NO_COLOR": "1"},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"deck {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")  # fmt: skip
    return result


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _certificate(subject: str, key: Any, issuer: x509.Name | None, signer: Any, ca: bool) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2120, 1, 1, tzinfo=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), False)
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def realistic_config() -> dict[str, Any]:
    """Services, routes, upstreams, targets, consumers with credentials, plugins at every
    scope, a certificate with SNIs and a CA certificate — a decK state file."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("Deck Test CA", ca_key, None, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.load_pem_x509_certificate(ca_cert.encode()).subject
    leaf_cert = _certificate("api.example.com", leaf_key, issuer, ca_key, ca=False)
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "orders",
                "url": "http://orders.internal:8080/v1",
                "retries": 3,
                "tags": ["team-a"],
                "plugins": [{"name": "rate-limiting", "config": {"minute": 60, "policy": "local"}}],
                "routes": [
                    {
                        "name": "orders-api",
                        "paths": ["/orders"],
                        "methods": ["GET", "POST"],
                        "strip_path": False,
                        "tags": ["team-a"],
                        "plugins": [{"name": "key-auth", "config": {"key_names": ["apikey"]}}],
                    },
                    {
                        "name": "orders-admin",
                        "hosts": ["admin.example.com"],
                        "paths": ["~/admin/(?<section>[a-z]+)$"],
                        "headers": {"x-admin": ["yes"]},
                        "regex_priority": 10,
                    },
                ],
            },
            {
                "name": "billing",
                "host": "billing-upstream",
                "protocol": "https",
                "port": 443,
                "connect_timeout": 5000,
                "routes": [{"name": "billing-api", "paths": ["/billing"], "protocols": ["https"]}],
            },
        ],
        "upstreams": [
            {
                "name": "billing-upstream",
                "algorithm": "consistent-hashing",
                "hash_on": "header",
                "hash_on_header": "x-account",
                "healthchecks": {
                    "active": {"healthy": {"interval": 5, "successes": 2}, "http_path": "/health"},
                    "passive": {"unhealthy": {"http_failures": 3}},
                },
                "targets": [
                    {"target": "10.0.0.1:8443", "weight": 100},
                    {"target": "10.0.0.2:8443", "weight": 50, "tags": ["canary"]},
                ],
            }
        ],
        "consumers": [
            {
                "username": "alice",
                "custom_id": "alice-001",
                "tags": ["vip"],
                "keyauth_credentials": [{"key": "alice-secret-key"}],
                "basicauth_credentials": [{"username": "alice", "password": "alice-password"}],
                "acls": [{"group": "admins"}, {"group": "users"}],
                "plugins": [{"name": "request-termination", "config": {"status_code": 403}}],
            },
            {
                "username": "bob",
                "keyauth_credentials": [{"key": "bob-secret-key", "tags": ["rotated"]}],
                "hmacauth_credentials": [{"username": "bob-hmac", "secret": "bob-hmac-secret"}],
                "jwt_secrets": [
                    {"key": "bob-issuer", "secret": "bob-jwt-secret", "algorithm": "HS256"}
                ],
            },
        ],
        "plugins": [
            {"name": "correlation-id", "config": {"header_name": "x-request-id"}},
            {
                "name": "rate-limiting",
                "route": "orders-api",
                "consumer": "alice",
                "config": {"second": 5},
            },
        ],
        "certificates": [
            {
                "id": CERTIFICATE_ID,  # decK requires ids on certificates
                "cert": leaf_cert,
                "key": _key_pem(leaf_key),
                "snis": [{"name": "api.example.com"}],
            }
        ],
        "ca_certificates": [{"cert": ca_cert}],
    }


def canonical(config: GatewayConfig) -> dict[str, Any]:
    """A config with ids, timestamps and secrets' hashes left out and references by name,
    so a file decK dumped compares equal to the file it synced."""
    names: dict[str, str] = {}
    for kind, attr in (("services", "name"), ("routes", "name"), ("consumers", "username"),
                       ("upstreams", "name"), ("certificates", "cert")):  # fmt: skip
        for entity in getattr(config, kind):
            names[str(entity.id)] = str(getattr(entity, attr))

    def clean(model: Any) -> dict[str, Any]:
        data = model.model_dump(mode="json", exclude={"id", "created_at", "updated_at"})
        for field in ("service", "route", "consumer", "upstream", "certificate"):
            if isinstance(data.get(field), str):
                data[field] = names.get(data[field], data[field])
        data.pop("credentials", None)
        return data

    def credentials(consumer: Any) -> dict[str, Any]:
        result = {}
        for kind, records in consumer.credentials.items():
            cleaned = []
            for record in records:
                item = {
                    k: v for k, v in record.items() if k not in ("id", "created_at", "consumer")
                }
                if kind == "basicauth_credentials":
                    item["password"] = "<hashed>"
                cleaned.append(
                    json.dumps({k: v for k, v in item.items() if v is not None}, sort_keys=True)
                )
            result[kind] = sorted(cleaned)
        return result

    return {
        "services": sorted((clean(s) for s in config.services), key=lambda d: str(d["name"])),
        "routes": sorted((clean(r) for r in config.routes), key=lambda d: str(d["name"])),
        "upstreams": [clean(u) for u in config.upstreams],
        "targets": sorted((clean(t) for t in config.targets), key=lambda d: str(d["target"])),
        "consumers": {
            str(c.username): {**clean(c), "credentials": credentials(c)} for c in config.consumers
        },
        "plugins": sorted(json.dumps(clean(p), sort_keys=True) for p in config.plugins),
        "certificates": sorted(json.dumps(clean(c), sort_keys=True) for c in config.certificates),
        "snis": sorted(json.dumps(clean(s), sort_keys=True) for s in config.snis),
        "ca_certificates": sorted(c.cert for c in config.ca_certificates),
    }
