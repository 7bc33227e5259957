"""Mesh API error bodies (Kuma's shape): ``{type, status, title, detail, invalid_parameters}``.

Validation failures list every violation as ``{"field": "spec.to[0].targetRef.kind",
"reason": "..."}``; other errors carry only ``title`` and ``detail``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshgate.errors import Violation


class ApiError(Exception):
    """An HTTP error answer of the Mesh API."""

    def __init__(
        self, status: int, title: str, detail: str = "", fields: Iterable[Violation] = ()
    ) -> None:
        super().__init__(title)
        self.status = status
        self.body: dict[str, Any] = {
            "type": "/std-errors",
            "status": status,
            "title": title,
            "detail": detail or title,
        }
        params = [{"field": v.path, "reason": v.message} for v in fields]
        if params:
            self.body["invalid_parameters"] = params


def invalid(violations: Iterable[Violation]) -> ApiError:
    return ApiError(400, "Could not process a resource", "Resource is not valid", violations)


def not_found(what: str) -> ApiError:
    return ApiError(404, "Could not find a resource", f"{what} not found")
