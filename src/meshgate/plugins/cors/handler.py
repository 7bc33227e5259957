"""cors: Kong's CORS plugin (PRIORITY 2000).

access: a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here
with 200 and the CORS headers — unless ``preflight_continue``, which sends it upstream
untouched.  response: every other response gets Access-Control-Allow-Origin (and
-Credentials, -Expose-Headers) for an allowed origin.

Origins, as Kong: none or a lone '*' → '*'.  A single plain origin → sent as it is (the browser
compares).  Otherwise the request's Origin is normalized (scheme://host[:port], default ports
dropped) and compared with each entry: plain entries exactly, regex-looking entries (any
character outside ``A-Za-z0-9.:/-``) as a regex anchored at both ends, matched against the
origin's host when the entry has no ':' and against the whole origin otherwise.  ``Vary:
Origin`` is added whenever the answer depends on the Origin.  Compiled once per config;
normalized request origins are cached (bounded).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

_PLAIN = re.compile(r"[A-Za-z0-9.:/-]+\Z")
_CACHE_MAX = 10000


def normalize_origin(origin: str) -> tuple[str, str]:
    """(normalized origin, host) as Kong's ``normalize_origin``."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return origin, origin
    if not parts.netloc or host is None:
        return origin, origin
    netloc = parts.netloc.rpartition("@")[2]
    host_text = netloc.rsplit(":", 1)[0] if port is not None else netloc
    if (parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443):
        port = None
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{host_text}{f':{port}' if port is not None else ''}", host_text


class _Origin:
    __slots__ = ("by_host", "domain", "regex")

    def __init__(self, entry: str) -> None:
        self.by_host = ":" not in entry
        self.regex: re.Pattern[str] | None = None
        self.domain = ""
        if _PLAIN.match(entry):
            self.domain = normalize_origin(entry)[0]
        else:
            pattern = entry if entry.endswith("$") else entry + "$"
            self.regex = re.compile(pattern[1:] if pattern.startswith("^") else pattern)


class Handler(PluginHandler):
    name = "cors"
    PRIORITY = 2000
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        origins = config.origins or []
        self.allow_all = not origins or ("*" in origins and len(origins) == 1)
        self.single = origins[0] if len(origins) == 1 and _PLAIN.match(origins[0]) else None
        self.star_in_list = "*" in origins
        self.entries = [_Origin(o) for o in origins if o != "*"]
        self.methods = ",".join(config.methods)
        self.allow_headers = ",".join(config.headers) if config.headers else None
        self.exposed = ",".join(config.exposed_headers) if config.exposed_headers else None
        self.max_age = None if config.max_age is None else _number_text(config.max_age)
        self.skip_key = f"cors:{instance.id}"
        self._normalized: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ origins

    def _match(self, origin: str) -> str | None:
        normalized = self._normalized.get(origin)
        if normalized is None:
            if len(self._normalized) >= _CACHE_MAX:
                self._normalized.clear()
            normalized = self._normalized[origin] = normalize_origin(origin)
        domain, host = normalized
        for entry in self.entries:
            if entry.regex is not None:
                if entry.regex.match(host if entry.by_host else domain):
                    return domain
            elif entry.domain == domain:
                return domain
        return None

    def _configure_origin(self, ctx: RequestContext, origin: str | None, vary_add: bool) -> bool:
        """Set Access-Control-Allow-Origin; True when it is '*'."""
        if self.allow_all:
            ctx.set_response_header("Access-Control-Allow-Origin", "*")
            return True
        if vary_add:
            ctx.add_response_header("Vary", "Origin")
        else:
            ctx.set_response_header("Vary", "Origin")
        if self.single is not None:
            ctx.set_response_header("Access-Control-Allow-Origin", self.single)
            return False
        if origin:
            if self.star_in_list:
                ctx.set_response_header("Access-Control-Allow-Origin", "*")
                return True
            allowed = self._match(origin)
            if allowed is not None:
                ctx.set_response_header("Access-Control-Allow-Origin", allowed)
                return False
        ctx.clear_response_header("Access-Control-Allow-Origin")
        return False

    def _configure_credentials(
        self, ctx: RequestContext, origin: str | None, allow_all: bool, vary_add: bool
    ) -> None:
        if not self.conf.credentials:
            return
        if not allow_all:
            ctx.set_response_header("Access-Control-Allow-Credentials", "true")
            return
        if origin:  # '*' may not go with credentials: answer with the request's origin
            if vary_add:
                ctx.add_response_header("Vary", "Origin")
            else:
                ctx.set_response_header("Vary", "Origin")
            ctx.set_response_header("Access-Control-Allow-Origin", origin)
            ctx.set_response_header("Access-Control-Allow-Credentials", "true")

    # ------------------------------------------------------------------ phases

    def access(self, ctx: RequestContext) -> None:
        if ctx.method != "OPTIONS":
            return
        origin = ctx.header("origin")
        if not origin or ctx.header("access-control-request-method") is None:
            return
        ctx.shared[self.skip_key] = True
        if self.conf.preflight_continue:
            return
        allow_all = self._configure_origin(ctx, origin, False)
        self._configure_credentials(ctx, origin, allow_all, False)
        if self.allow_headers is not None:
            ctx.set_response_header("Access-Control-Allow-Headers", self.allow_headers)
        else:
            requested = ctx.header("access-control-request-headers")
            if requested:
                ctx.set_response_header("Access-Control-Allow-Headers", requested)
            else:
                ctx.clear_response_header("Access-Control-Allow-Headers")
        ctx.set_response_header("Access-Control-Allow-Methods", self.methods)
        if self.max_age is not None:
            ctx.set_response_header("Access-Control-Max-Age", self.max_age)
        if (
            self.conf.private_network
            and ctx.header("access-control-request-private-network") == "true"
        ):
            ctx.set_response_header("Access-Control-Allow-Private-Network", "true")
        ctx.exit(200)

    def response(self, ctx: RequestContext) -> None:
        if ctx.shared.get(self.skip_key):
            return
        origin = ctx.header("origin")
        if not origin and not self.conf.allow_origin_absent:
            return
        allow_all = self._configure_origin(ctx, origin, True)
        self._configure_credentials(ctx, origin, allow_all, True)
        if self.exposed is not None:
            ctx.set_response_header("Access-Control-Expose-Headers", self.exposed)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
