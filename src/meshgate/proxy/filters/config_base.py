"""``PluginConfig``, the base of every plugin's ``Config`` (re-exported by ``filters.api``).

A module of its own because it needs pydantic: ``filters.api`` loads it when a plugin asks
for it, so a proxy whose snapshots name no plugin (a mesh sidecar) never imports pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PluginConfig(BaseModel):
    """Base of every plugin's ``Config``: typed, described, defaulted, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)
