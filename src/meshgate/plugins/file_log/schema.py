"""file-log config, as Kong's: ``path`` and ``reopen``; ``custom_fields_by_lua`` is refused."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from meshgate.plugins._shared.validators import refuse_lua
from meshgate.proxy.filters.api import PluginConfig

# Kong's ^[^%s*&%%\`][^*&%%\`]*[^%s*&%%\`]$
_FILENAME = re.compile(r"[^\s*&%\\`][^*&%\\`]*[^\s*&%\\`]\Z")


def _check_path(path: str) -> str:
    if not _FILENAME.match(path):
        raise ValueError("not a valid filename")
    return path


class Config(PluginConfig):
    path: Annotated[str, AfterValidator(_check_path)] = Field(
        description="The file the records are appended to (created if missing)."
    )
    reopen: bool = Field(
        default=False, description="Close and reopen the file for every write (log rotation)."
    )
    custom_fields_by_lua: Annotated[dict[str, str] | None, AfterValidator(refuse_lua)] = Field(
        default=None, description="Not supported (Lua code)."
    )
