"""Process-wide logging set-up: human lines for the node log, one JSON line per request."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "info", access_log: bool = True) -> None:
    """Node log to stderr at ``level``; the access log (logger ``meshgate.access``) to stdout."""
    root = logging.getLogger()
    root.handlers.clear()
    node = logging.StreamHandler(sys.stderr)
    node.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(node)
    root.setLevel(level.upper())
    access = logging.getLogger("meshgate.access")
    access.handlers.clear()
    access.propagate = False
    if access_log:
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(out)
        access.setLevel(logging.INFO)
    else:
        access.disabled = True
