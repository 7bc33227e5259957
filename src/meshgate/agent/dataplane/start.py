"""Entry of the sidecar's serving process: ``python -m meshgate.agent.dataplane.start FILE``.

Before anything imports pydantic it stands in for pydantic's plugin loader, then runs
``serve.main``.  pydantic looks for plugins (``pydantic`` entry points) when the first model is
built, and its loader imports ``importlib.metadata`` and with it email, zipfile, csv, lzma …
(~1.3 MB of RSS).  The serving process only validates snapshots its control plane pushed, so it
runs without pydantic plugins; every other meshgate process keeps them.
"""

from __future__ import annotations

import sys
import types

_LOADER = "pydantic.plugin._loader"


def without_pydantic_plugins() -> None:
    """Make pydantic find no plugins without importing its entry-point loader."""
    if _LOADER not in sys.modules:
        loader = types.ModuleType(_LOADER)
        loader.__dict__["get_plugins"] = tuple
        sys.modules[_LOADER] = loader


if __name__ == "__main__":
    without_pydantic_plugins()
    from meshgate.agent.dataplane.serve import main

    sys.exit(main(sys.argv[1:]))
