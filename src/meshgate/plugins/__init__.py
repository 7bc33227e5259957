"""The bundled plugins: one package per plugin, ``schema.py`` (``Config``) + ``handler.py``
(``Handler``).

A package ``meshgate.plugins.<module>`` is the plugin named ``<module>`` with ``_`` turned into
``-`` (``request_termination`` → ``request-termination``), Kong's spelling.  Discovery only
lists the packages; nothing is imported until a plugin is used
(``meshgate.proxy.filters.registry`` loads them).
"""

from __future__ import annotations

import pkgutil


def bundled_plugins() -> dict[str, str]:
    """Plugin name -> module path of every bundled plugin package."""
    found: dict[str, str] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg and not module.name.startswith("_"):
            found[module.name.replace("_", "-")] = f"{__name__}.{module.name}"
    return found
