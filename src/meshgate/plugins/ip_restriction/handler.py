"""ip-restriction: in access, refuse clients whose address is in ``deny`` or, when ``allow`` is
set, not in it (Kong's order and PRIORITY 990).  Default answer: 403
"IP address not allowed: <client ip>" (Kong 3.4+; earlier Kong said "Your IP address is not
allowed").

The lists are compiled once into, per address family, a set of network integers per prefix
length: a lookup is one mask-and-probe per distinct prefix length.  Verdicts are cached per
client address string (bounded), so a returning client costs one dict lookup.  IPv4-mapped
IPv6 clients (``::ffff:a.b.c.d``) are matched as their IPv4 address.
"""

from __future__ import annotations

import ipaddress
import logging

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

_log = logging.getLogger("meshgate.plugins.ip-restriction")
_CACHE_MAX = 16384
ALLOWED, DENIED = True, False


class NetworkSet:
    """Membership of an address in a fixed list of networks, by prefix length."""

    def __init__(self, entries: list[str]) -> None:
        v4: dict[int, set[int]] = {}
        v6: dict[int, set[int]] = {}
        for entry in entries:
            net = ipaddress.ip_network(entry, strict=False)
            if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped:
                mapped = net.network_address.ipv4_mapped
                net = ipaddress.IPv4Network((int(mapped), max(0, net.prefixlen - 96)), strict=False)
            table = v4 if net.version == 4 else v6
            table.setdefault(net.prefixlen, set()).add(int(net.network_address))
        self.v4 = self._masks(v4, 32)
        self.v6 = self._masks(v6, 128)

    @staticmethod
    def _masks(table: dict[int, set[int]], bits: int) -> list[tuple[int, frozenset[int]]]:
        full = (1 << bits) - 1
        return [
            (full ^ ((1 << (bits - prefix)) - 1), frozenset(networks))
            for prefix, networks in sorted(table.items(), reverse=True)
        ]

    def __contains__(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        value = int(address)
        for mask, networks in self.v4 if address.version == 4 else self.v6:
            if value & mask in networks:
                return True
        return False


def parse_client(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Handler(PluginHandler):
    name = "ip-restriction"
    PRIORITY = 990
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.deny = NetworkSet(config.deny) if config.deny else None
        self.allow = NetworkSet(config.allow) if config.allow else None
        self.status = config.status or 403
        self.message = config.message
        self._verdicts: dict[str, bool] = {}

    def verdict(self, client_ip: str) -> bool:
        address = parse_client(client_ip)
        if address is None:  # not an IP (a unix socket peer): Kong refuses it
            return DENIED
        if self.deny is not None and address in self.deny:
            return DENIED
        if self.allow is not None and address not in self.allow:
            return DENIED
        return ALLOWED

    def access(self, ctx: RequestContext) -> None:
        client_ip = ctx.client_ip
        allowed = self._verdicts.get(client_ip)
        if allowed is None:
            if len(self._verdicts) >= _CACHE_MAX:
                self._verdicts.clear()
            allowed = self._verdicts[client_ip] = self.verdict(client_ip)
        if not allowed:
            message = self.message or f"IP address not allowed: {client_ip}"
            _log.debug("ip-restriction refused %s", client_ip)
            ctx.exit(self.status, message)
