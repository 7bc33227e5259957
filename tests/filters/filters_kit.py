"""Helpers for the chain unit tests: a registry of trivial plugins and a chain walker."""

from __future__ import annotations

from meshgate.proxy.filters.api import PluginConfig, PluginHandler, RequestContext
from meshgate.proxy.filters.chain import Chain, compile_plugins
from meshgate.proxy.filters.env import SnapshotEnv
from meshgate.proxy.filters.registry import PluginRegistry, spec_from_handler
from meshgate.proxy.filters.runner import advance
from meshgate.proxy.filters.testing import FakeContext
from meshgate.snapshot import Consumer, PluginInstance, Route, Service, Snapshot


class Empty(PluginConfig):
    pass


def recorder(name: str, priority: int) -> type[PluginHandler]:
    """A plugin that appends (name, instance id) to ctx.shared["ran"] in access."""

    def access(self: PluginHandler, ctx: RequestContext) -> None:
        ctx.shared.setdefault("ran", []).append((self.instance.name, self.instance.id))

    return type(
        f"Rec_{name}",
        (PluginHandler,),
        {"name": name, "PRIORITY": priority, "Config": Empty, "access": access},
    )


class Auth(PluginHandler):
    """Authenticates the consumer named by header X-Consumer (priority 1000)."""

    name = "auth"
    PRIORITY = 1000
    Config = Empty

    def access(self, ctx: RequestContext) -> None:
        wanted = ctx.header("x-consumer")
        if wanted:
            ctx.authenticate(Consumer(id=wanted), {"id": "cred"})


def registry(*handlers: type[PluginHandler]) -> PluginRegistry:
    reg = PluginRegistry("off")
    for cls in handlers:
        reg.register(spec_from_handler(cls.name, cls, "test"))
    return reg


ROUTE = Route(id="r", paths=("/",), service="s")
OTHER_ROUTE = Route(id="r-other", paths=("/o",), service="s-other")
SERVICES = (
    Service(id="s", host="h", cluster="c"),
    Service(id="s-other", host="h", cluster="c"),
)


def compile_chain(
    plugins: list[PluginInstance], reg: PluginRegistry, scheme: str = "http", route: str = "r"
) -> Chain | None:
    snap = Snapshot(routes=(ROUTE, OTHER_ROUTE), services=SERVICES, plugins=tuple(plugins))
    compiled = compile_plugins(snap, reg, SnapshotEnv(snap))
    chains = compiled.chains.get(route)
    if chains is None:
        return None
    return chains[0] if scheme == "http" else chains[1]


def run_access(chain: Chain | None, consumer: str | None = None) -> list[tuple[str, str]]:
    """The (name, instance id) of every recorder that ran, in order."""
    if chain is None:
        return []
    headers = {"X-Consumer": consumer} if consumer else {}
    ctx = FakeContext("GET", "/", headers=headers, route=ROUTE)
    assert advance(ctx, chain, 0) is None
    ran: list[tuple[str, str]] = ctx.shared.get("ran", [])
    return ran


def change_request_headers(ctx: RequestContext, ops: list[tuple[str, str, str]]) -> None:
    """``(op, name, value)`` changes made through the context's request-header calls."""
    for op, name, value in ops:
        if op == "set":
            ctx.set_header(name, value)
        elif op == "add":
            ctx.add_header(name, value)
        else:
            ctx.clear_header(name)


def change_response_headers(ctx: RequestContext, ops: list[tuple[str, str, str]]) -> None:
    """``(op, name, value)`` changes made through the context's response-header calls."""
    for op, name, value in ops:
        if op == "set":
            ctx.set_response_header(name, value)
        elif op == "add":
            ctx.add_response_header(name, value)
        else:
            ctx.clear_response_header(name)
