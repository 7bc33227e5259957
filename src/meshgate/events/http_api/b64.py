"""Strict base64 helpers (standard and URL-safe alphabets) shared by the codecs."""

from __future__ import annotations

import base64
import binascii


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Standard base64 with padding; raises ``ValueError`` on anything else."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("invalid base64") from exc


def b64url_encode(data: bytes) -> str:
    """URL-safe base64 without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The inverse of ``b64url_encode``; raises ``ValueError`` on foreign characters."""
    if not text or any(c not in _URL_ALPHABET for c in text) or len(text) % 4 == 1:
        raise ValueError("invalid base64url")
    padded = text + "=" * (-len(text) % 4)
    decoded = base64.urlsafe_b64decode(padded.encode("ascii"))
    if b64url_encode(decoded) != text:  # non-canonical trailing bits
        raise ValueError("invalid base64url")
    return decoded


_URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
