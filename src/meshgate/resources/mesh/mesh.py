"""The ``Mesh`` resource: one isolated mesh, its mTLS CA backends and mTLS mode.

Kuma's Universal shape (fields at the top level, next to ``type`` and ``name``)::

    type: Mesh
    name: default
    mtls:
      enabledBackend: ca-1
      mode: strict                 # or permissive; also accepted per backend (Kuma: STRICT)
      backends:
        - name: ca-1
          type: builtin            # or provided
          dpCert: {rotation: {expiration: 24h}}
          conf: {caCert: {RSAbits: 2048, expiration: 10y}}

``provided`` backends take ``conf: {cert: {inlineString|file}, key: {inlineString|file}}``.
No ``mtls`` (or no ``enabledBackend``) means mTLS is off: plain traffic, no identities, and
traffic permissions are not enforced.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from meshgate.resources.kong_common import EntityViolations, Loc
from meshgate.resources.mesh.base import Duration, MeshModel, Name, duration_ms

MTLSMode = Literal["strict", "permissive"]
DEFAULT_WORKLOAD_TTL = "24h"
DEFAULT_ROOT_TTL = "10y"


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


ModeField = Annotated[MTLSMode | None, BeforeValidator(_lower)]  # Kuma writes STRICT


class DataSource(MeshModel):
    """PEM material: inline text or a file the control plane reads."""

    inline_string: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSource:
        if (self.inline_string is None) == (self.file is None):
            raise ValueError("exactly one of inlineString or file is required")
        return self


class CACertConf(MeshModel):
    rsa_bits: int | None = Field(default=None, alias="RSAbits", ge=2048, le=8192)
    expiration: Duration | None = None


class Rotation(MeshModel):
    expiration: Duration = DEFAULT_WORKLOAD_TTL

    @field_validator("expiration")
    @classmethod
    def _at_least_a_minute(cls, value: str) -> str:
        if duration_ms(value) < 60_000:
            raise ValueError("workload certificates must live at least 1m")
        return value


class DpCert(MeshModel):
    rotation: Rotation = Rotation()


class BackendConf(MeshModel):
    ca_cert: CACertConf | None = None  # builtin
    dp_cert: DpCert | None = None  # accepted here as well as on the backend
    cert: DataSource | None = None  # provided
    key: DataSource | None = None  # provided


class CABackend(MeshModel):
    name: Name
    type: Literal["builtin", "provided"]
    mode: ModeField = None
    dp_cert: DpCert | None = None
    conf: BackendConf = BackendConf()

    @model_validator(mode="after")
    def _conf_fits_type(self) -> CABackend:
        problems: list[tuple[Loc, str]] = []
        if self.type == "provided":
            for part in ("cert", "key"):
                if getattr(self.conf, part) is None:
                    problems.append((("conf", part), "required for a provided CA"))
            if self.conf.ca_cert is not None:
                problems.append((("conf", "caCert"), "only for a builtin CA"))
        else:
            for part in ("cert", "key"):
                if getattr(self.conf, part) is not None:
                    problems.append((("conf", part), "only for a provided CA"))
        if problems:
            raise EntityViolations(problems)
        return self

    @property
    def workload_ttl_ms(self) -> int:
        dp_cert = self.dp_cert or self.conf.dp_cert or DpCert()
        return duration_ms(dp_cert.rotation.expiration)

    @property
    def root_ttl_ms(self) -> int:
        ca_cert = self.conf.ca_cert or CACertConf()
        return duration_ms(ca_cert.expiration or DEFAULT_ROOT_TTL)


class MTLS(MeshModel):
    enabled_backend: str | None = None
    mode: ModeField = None
    backends: list[CABackend] = []

    @model_validator(mode="after")
    def _backend_exists(self) -> MTLS:
        problems: list[tuple[Loc, str]] = []
        names = [b.name for b in self.backends]
        for index, name in enumerate(names):
            if name in names[:index]:
                problems.append((("backends", index, "name"), f"duplicate backend '{name}'"))
        if self.enabled_backend is not None and self.enabled_backend not in names:
            problems.append((("enabledBackend",), f"no backend named '{self.enabled_backend}'"))
        if problems:
            raise EntityViolations(problems)
        return self


class Mesh(MeshModel):
    """A mesh; ``enabled_backend()`` is the CA that signs its workloads (None: mTLS off)."""

    type: Literal["Mesh"] = "Mesh"
    name: Name
    labels: dict[str, str] = {}
    mtls: MTLS | None = None
    skip_creating_initial_policies: list[str] = []

    def enabled_backend(self) -> CABackend | None:
        if self.mtls is None or self.mtls.enabled_backend is None:
            return None
        return next(b for b in self.mtls.backends if b.name == self.mtls.enabled_backend)

    @property
    def mtls_enabled(self) -> bool:
        return self.enabled_backend() is not None

    @property
    def mtls_mode(self) -> MTLSMode:
        """``strict`` unless the enabled backend (or ``mtls.mode``) says ``permissive``."""
        backend = self.enabled_backend()
        if backend is not None and backend.mode is not None:
            return backend.mode
        if self.mtls is not None and self.mtls.mode is not None:
            return self.mtls.mode
        return "strict"
