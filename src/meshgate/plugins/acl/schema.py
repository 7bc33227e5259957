"""acl config, as Kong's (3.9): exactly one of ``allow`` / ``deny``."""

from __future__ import annotations

from pydantic import Field, model_validator

from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    allow: tuple[str, ...] | None = Field(
        default=None,
        description="Groups allowed to consume the service or route (one of allow or deny).",
    )
    deny: tuple[str, ...] | None = Field(
        default=None,
        description="Groups not allowed to consume the service or route (one of allow or deny).",
    )
    hide_groups_header: bool = Field(
        default=False,
        description="Do not send the X-Consumer-Groups header to the upstream.",
    )
    always_use_authenticated_groups: bool = Field(
        default=False,
        description="Use the authenticated groups (set by another plugin) even when a "
        "consumer is authenticated; by default they are used only without a consumer or for "
        "the anonymous consumer.",
    )

    @model_validator(mode="after")
    def _one_list(self) -> Config:
        if self.allow and self.deny:
            raise ValueError(
                "only one of these fields must be non-empty: 'config.allow', 'config.deny'"
            )
        if not self.allow and not self.deny:
            raise ValueError(
                "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"
            )
        return self
