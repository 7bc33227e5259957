"""meshgate.resources: schemas of every resource and the declarative file format.

Kong entities: ``meshgate.resources.kong``; a whole gateway configuration:
``GatewayConfig``; Kong declarative files: ``load_file`` / ``load_text`` / ``load_dict`` and
``dump_dict`` / ``dump_yaml``.  They are imported on first use, so that importing
``meshgate.resources.mesh`` (a sidecar does) does not build every Kong entity schema.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshgate.resources.declarative import (
        dump_dict,
        dump_yaml,
        load_dict,
        load_file,
        load_text,
    )
    from meshgate.resources.gateway_config import GatewayConfig

__all__ = ["GatewayConfig", "dump_dict", "dump_yaml", "load_dict", "load_file", "load_text"]
_HOMES = {"GatewayConfig": "meshgate.resources.gateway_config"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_HOMES.get(name, "meshgate.resources.declarative"))
    return getattr(module, name)
