"""tcp-log config, as Kong's: host, port, timeout, keepalive, tls, tls_sni;
``custom_fields_by_lua`` is refused."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from meshgate.plugins._shared.validators import check_host, refuse_lua
from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    host: Annotated[str, AfterValidator(check_host)] = Field(
        description="The IP address or host name to send data to."
    )
    port: int = Field(ge=0, le=65535, description="The port to send data to.")
    timeout: float = Field(default=10000, ge=0, description="Send timeout in milliseconds.")
    keepalive: float = Field(
        default=60000, ge=0, description="How long an idle connection is kept, in milliseconds."
    )
    tls: bool = Field(default=False, description="Perform a TLS handshake with the server.")
    tls_sni: str | None = Field(default=None, description="The SNI name sent in the handshake.")
    custom_fields_by_lua: Annotated[dict[str, str] | None, AfterValidator(refuse_lua)] = Field(
        default=None, description="Not supported (Lua code)."
    )
