"""Dataplane tokens: what a sidecar presents to be admitted into a mesh.

A token is a JWT (HS256) signed with its mesh's signing key, a random secret kept in the
store (document ``mesh_dp_signing_key``/``<mesh>``, created on first use).  Claims:

* ``mesh`` — the mesh the sidecar may join (also in the JWT header as ``kid``);
* ``name`` — the dataplane name it may claim (absent: any name);
* ``tags`` — tags every inbound of the dataplane must carry (e.g. ``kuma.io/service``);
* ``iat``, optional ``exp``, ``jti``.

Deleting the mesh's signing-key document revokes every token of that mesh.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.store.api import Store
from meshgate.store.errors import UniqueViolation

KEY_DOC_TYPE = "mesh_dp_signing_key"
ISSUER = "meshgate-cp"
_ALGORITHM = "HS256"


class TokenRefused(Exception):
    """The token does not admit this dataplane (the message says why)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    mesh: str
    name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def admit(self, dataplane: Dataplane) -> None:
        """``TokenRefused`` unless the token lets ``dataplane`` in."""
        if dataplane.mesh != self.mesh:
            raise TokenRefused(f"the token is for mesh '{self.mesh}', not '{dataplane.mesh}'")
        if self.name is not None and dataplane.name != self.name:
            raise TokenRefused(f"the token is for dataplane '{self.name}', not '{dataplane.name}'")
        for index, inbound in enumerate(dataplane.networking.inbound):
            for key, value in self.tags.items():
                if inbound.tags.get(key) != value:
                    raise TokenRefused(
                        f"networking.inbound[{index}]: the token requires tag {key}={value}"
                    )


class DataplaneTokens:
    """Issues and verifies dataplane tokens with keys kept in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def issue(
        self,
        mesh: str,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        valid_for: float | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "mesh": mesh,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        if name is not None:
            claims["name"] = name
        if tags:
            claims["tags"] = dict(tags)
        if valid_for is not None:
            claims["exp"] = now + int(valid_for)
        key = await self._key(mesh, create=True)
        assert key is not None
        return jwt.encode(claims, key, algorithm=_ALGORITHM, headers={"kid": mesh})

    async def verify(self, token: str) -> TokenClaims:
        """The token's claims once its signature, issuer and expiry check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"malformed token: {exc}") from None
        mesh = header.get("kid")
        if not isinstance(mesh, str):
            raise TokenRefused("the token names no mesh")
        key = await self._key(mesh, create=False)
        if key is None:
            raise TokenRefused(f"no signing key for mesh '{mesh}': the token is not valid")
        try:
            claims = jwt.decode(
                token, key, algorithms=[_ALGORITHM], issuer=ISSUER, options={"require": ["iat"]}
            )
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"invalid token: {exc}") from None
        if claims.get("mesh") != mesh:
            raise TokenRefused("the token's mesh claim does not match its key")
        name = claims.get("name")
        tags = claims.get("tags") or {}
        if not isinstance(tags, dict):
            raise TokenRefused("the token's tags claim is not a mapping")
        return TokenClaims(mesh, str(name) if name is not None else None, tags)

    async def _key(self, mesh: str, *, create: bool) -> str | None:
        doc = await self.store.get(KEY_DOC_TYPE, mesh)
        if doc is not None:
            return str(doc["key"])
        if not create:
            return None
        fresh = {"id": mesh, "key": secrets.token_urlsafe(48)}
        try:
            await self.store.insert(KEY_DOC_TYPE, fresh, unique_keys=())
        except UniqueViolation:
            return await self._key(mesh, create=False)
        return str(fresh["key"])
