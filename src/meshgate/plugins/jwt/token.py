"""JWT decoding and signature checks, as Kong's jwt parser (sans-io, cryptography only).

``decode`` splits a compact JWS into header, claims and signature and reports Kong's reasons
("invalid JSON", "invalid alg", "invalid claims", "invalid signature") for a token it cannot
use.  ``Verifier`` holds a credential's key, loaded once, and checks signatures; a key that
does not load or a signature of the wrong size is a failed check, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# ECDSA: raw r||s signature size (RFC 7518 §3.4) per algorithm
_EC_SIZES = {"ES256": 64, "ES384": 96, "ES512": 132}
ALGORITHMS = frozenset(
    {*_HMAC, "RS256", "RS384", "RS512", *_EC_SIZES, "PS256", "PS384", "PS512", "EdDSA"}
)
# A token longer than this is refused as "invalid JSON" before any decoding.
MAX_TOKEN = 64 * 1024


def b64url_decode(text: str) -> bytes | None:
    """Base64url (also plain base64) with or without padding; None if it is not base64."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    data = data.translate(bytes.maketrans(b"-_", b"+/")).rstrip(b"=")
    data += b"=" * (-len(data) % 4)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Token:
    header: dict[str, Any]
    claims: dict[str, Any]
    signature: bytes
    signing_input: bytes


def _json_object(part: str) -> dict[str, Any] | None:
    raw = b64url_decode(part)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def decode(token: str) -> Token | str:
    """The token, or why it is unusable (Kong's wording, to follow "Bad token; ")."""
    if len(token) > MAX_TOKEN:
        return "invalid JSON"
    parts = token.split(".", 2)
    if len(parts) != 3:
        return "invalid JSON"
    header_64, claims_64, signature_64 = parts
    header = _json_object(header_64)
    claims = _json_object(claims_64)
    if header is None or claims is None:
        return "invalid JSON"
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        return "invalid alg"
    signature = b64url_decode(signature_64)
    if signature is None:
        return "invalid signature"
    signing_input = f"{header_64}.{claims_64}".encode("ascii")
    return Token(header, claims, signature, signing_input)


class Verifier:
    """Checks signatures of one algorithm with one key (an HMAC secret or a PEM public key)."""

    __slots__ = ("algorithm", "key")

    key: Any  # bytes (HMAC) or a cryptography public key

    def __init__(self, algorithm: str, key: Any) -> None:
        self.algorithm = algorithm
        self.key = key

    @classmethod
    def build(cls, algorithm: str, secret: bytes | None, public_pem: str | None) -> Verifier | None:
        """A verifier, or None when the credential has no usable key (Kong: "Invalid
        key/secret")."""
        if algorithm in _HMAC:
            return cls(algorithm, secret) if secret is not None else None
        if not public_pem:
            return None
        try:
            key = serialization.load_pem_public_key(public_pem.encode())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            try:  # a certificate where a public key is expected
                key = x509.load_pem_x509_certificate(public_pem.encode()).public_key()
            except (ValueError, TypeError, UnsupportedAlgorithm):
                return None
        family = algorithm[:2]
        if family in ("RS", "PS") and not isinstance(key, rsa.RSAPublicKey):
            return None
        if family == "ES" and not isinstance(key, ec.EllipticCurvePublicKey):
            return None
        if algorithm == "EdDSA" and not isinstance(
            key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
        ):
            return None
        return cls(algorithm, key)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        algorithm, key = self.algorithm, self.key
        digest = _HMAC.get(algorithm)
        if digest is not None:
            assert isinstance(key, bytes)
            expected = hmac.new(key, signing_input, digest).digest()
            return hmac.compare_digest(expected, signature)
        try:
            if algorithm == "EdDSA":
                key.verify(signature, signing_input)
                return True
            hash_algorithm = _HASHES[algorithm[2:]]()
            if algorithm.startswith("RS"):
                key.verify(signature, signing_input, padding.PKCS1v15(), hash_algorithm)
            elif algorithm.startswith("PS"):
                pss = padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO)
                key.verify(signature, signing_input, pss, hash_algorithm)
            else:
                size = _EC_SIZES[algorithm]
                if len(signature) != size:
                    return False
                half = size // 2
                der = encode_dss_signature(
                    int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
                )
                key.verify(der, signing_input, ec.ECDSA(hash_algorithm))
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True
