"""Kong's list conventions: ``size`` (1-1000, default 100), opaque ``offset``, ``tags`` filters
(``a,b`` = all of them, ``a/b`` = any of them, at most 5, not mixed) and the page body
``{"data": [...], "next": "/services?offset=...", "offset": "..."}`` (no ``offset`` and a null
``next`` on the last page; decK pages with the ``offset`` field)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from meshgate.controlplane.admin_api.crud import ListQuery
from meshgate.controlplane.admin_api.errors import INVALID_OPTIONS, INVALID_SIZE, dao_error
from meshgate.resources.kong_common import check_tag
from meshgate.store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from meshgate.store.api import TagsMode

MAX_TAGS = 5


def parse_size(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise dao_error(400, INVALID_SIZE, f"size must be an integer between 1 and {MAX_PAGE_SIZE}")
    return int(value)


def parse_tags(value: str | None) -> tuple[tuple[str, ...], TagsMode]:
    if value is None or value == "":
        return (), "and"
    if "," in value and "/" in value:
        raise _bad_tags("invalid filter syntax")
    mode: TagsMode = "or" if "/" in value else "and"
    tags = tuple(value.split("/" if mode == "or" else ","))
    if len(tags) > MAX_TAGS:
        raise _bad_tags(f"cannot query more than {MAX_TAGS} tags")
    for tag in tags:
        try:
            check_tag(tag)
        except ValueError as exc:
            raise _bad_tags(str(exc)) from None
    return tags, mode


def _bad_tags(reason: str) -> Exception:
    return dao_error(400, INVALID_OPTIONS, f"invalid option (tags: {reason})", {"tags": reason})


def list_query(
    params: Mapping[str, str], filters: Mapping[str, str | None] | None = None
) -> ListQuery:
    tags, mode = parse_tags(params.get("tags"))
    offset = params.get("offset") or None
    return ListQuery(parse_size(params.get("size")), offset, tags, mode, dict(filters or {}))


def page_body(page: Page, path: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The JSON of one page; ``next`` repeats the query with the new offset."""
    body: dict[str, Any] = {"data": page.data, "next": None}
    if page.next_offset is not None:
        query = {"offset": page.next_offset}
        for name in ("size", "tags"):
            if params.get(name):
                query[name] = params[name]
        body["next"] = f"{path}?{urlencode(query)}"
        body["offset"] = page.next_offset
    return body
