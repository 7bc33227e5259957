"""Running a chain's phases over a context — shared by the engine and the test kit.

``advance`` runs rewrite then access from a step index and stops at the first handler that
returns an awaitable, handing back where to continue: a chain of sync plugins runs straight
through with no task.  ``Exit`` and plugin exceptions propagate to the caller (the engine
answers them); ``ctx.plugin`` names the plugin that was running.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from meshgate.proxy.filters.api import Phase

if TYPE_CHECKING:
    from meshgate.proxy.filters.chain import Bound, Chain, Slot
    from meshgate.proxy.filters.context import HttpContext

_log = logging.getLogger("meshgate.plugins")

Pending = tuple[int, Awaitable[None]]
Later = tuple[Sequence["Bound"], Sequence["Bound"], Sequence["Bound"]]


def _resolve(slot: Slot, ctx: HttpContext) -> Bound | None:
    overrides = slot.overrides
    consumer = ctx.consumer
    if overrides is None or consumer is None:
        return slot.base
    return overrides.get(consumer.id, slot.base)


def advance(ctx: HttpContext, chain: Chain, start: int) -> Pending | None:
    """Run rewrite+access steps from ``start``; ``(next_step, awaitable)`` when one waits."""
    rewrite = chain.rewrite
    n_rewrite = len(rewrite)
    i = start
    if i < n_rewrite:
        ctx.phase = Phase.REWRITE
        while i < n_rewrite:
            b = rewrite[i]
            i += 1
            ctx.plugin = b.name
            result = b.rewrite(ctx)  # type: ignore[misc]  # only handlers with rewrite are here
            if result is not None:
                return i, result
    ctx.phase = Phase.ACCESS
    j = i - n_rewrite
    if not chain.dynamic:
        steps = chain.access
        while j < len(steps):
            b = steps[j]
            j += 1
            ctx.plugin = b.name
            result = b.access(ctx)  # type: ignore[misc]
            if result is not None:
                return n_rewrite + j, result
        return None
    slots = chain.slots
    collected = ctx.collected
    if collected is None:
        collected = ctx.collected = []
    while j < len(slots):
        slot = slots[j]
        j += 1
        chosen = _resolve(slot, ctx)
        if chosen is None:
            continue
        collected.append(chosen)
        if chosen.access is not None:
            ctx.plugin = chosen.name
            result = chosen.access(ctx)
            if result is not None:
                return n_rewrite + j, result
    return None


def collect_rest(ctx: HttpContext, chain: Chain) -> None:
    """After an exit in access: the plugins not reached yet still run their later phases
    (as Kong's collecting iterator does), resolved with the consumer known now."""
    if not chain.dynamic:
        return
    collected = ctx.collected
    if collected is None:
        collected = ctx.collected = []
    seen = {b.name for b in collected}
    for slot in chain.slots:
        if slot.name not in seen:
            b = _resolve(slot, ctx)
            if b is not None:
                collected.append(b)


def later_phases(ctx: HttpContext, chain: Chain) -> Later:
    """The handlers of the response, body and log phases for this request."""
    if not chain.dynamic:
        return chain.response, chain.body, chain.log
    if ctx.collected is None:
        collect_rest(ctx, chain)
    return chain.after_access(ctx.collected or [])


def run_response(ctx: HttpContext, handlers: Sequence[Bound]) -> None:
    ctx.phase = Phase.RESPONSE
    for b in handlers:
        ctx.plugin = b.name
        b.response(ctx)  # type: ignore[misc]


def run_body(ctx: HttpContext, handlers: Sequence[Bound], chunk: bytes, eof: bool) -> bytes:
    ctx.phase = Phase.BODY
    for b in handlers:
        ctx.plugin = b.name
        chunk = b.body(ctx, chunk, eof)  # type: ignore[misc]
    return chunk


def run_log(ctx: HttpContext, handlers: Sequence[Bound]) -> None:
    """Every log handler; one that raises is logged and the others still run."""
    ctx.phase = Phase.LOG
    for b in handlers:
        try:
            b.log(ctx)  # type: ignore[misc]
        except Exception:
            route = ctx.route.id if ctx.route is not None else "-"
            _log.exception("plugin %s failed in the log phase (route %s)", b.name, route)
