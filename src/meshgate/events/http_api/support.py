"""Small pieces the ``kafka-*`` plugin handlers share: cursor codec from config, answering an
``HttpProblem``, record headers from HTTP headers, the consumer's groups."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from meshgate.events.http_api.cursor import CursorCodec, node_secret
from meshgate.events.http_api.logs import runtime_dir
from meshgate.events.http_api.problems import HttpProblem

if TYPE_CHECKING:
    from meshgate.proxy.filters.api import RequestContext


def cursor_codec(secret: str | None) -> CursorCodec:
    """The codec for ``cursor_secret`` (any length, hashed to a key), else the node's secret."""
    if secret:
        return CursorCodec(hashlib.sha256(secret.encode()).digest())
    return CursorCodec(node_secret(runtime_dir()))


def answer(ctx: RequestContext, problem: HttpProblem) -> NoReturn:
    ctx.exit(problem.status, problem.body, headers=problem.headers)


def record_headers(
    headers: Mapping[str, Sequence[str]], allowed: Iterable[str]
) -> list[tuple[str, bytes]]:
    """HTTP request headers named in ``allowed`` (case-insensitive), as record headers."""
    out: list[tuple[str, bytes]] = []
    for name in allowed:
        for value in headers.get(name.lower(), ()):
            out.append((name.lower(), value.encode("latin-1")))
    return out


def shared_groups(shared: Mapping[str, Any]) -> tuple[str, ...]:
    groups = shared.get("authenticated_groups")
    return (
        tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list | tuple) else ()
    )
