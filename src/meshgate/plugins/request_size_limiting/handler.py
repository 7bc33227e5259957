"""request-size-limiting: in access, refuse a request whose body is over the allowed size with
413 "Request size limit exceeded" (417 when the client sent ``Expect: 100-continue``), as Kong
(PRIORITY 951).

A numeric Content-Length is checked before anything is read.  A body without one (chunked) is
counted: the handler asks the engine to collect bodies (``needs_body``) with ``body_limit`` set
to the allowed size, so a chunked body is refused with the same 413 as soon as it grows past
the limit, while it is being read, without buffering more than the limit.
``require_content_length``: a request with neither a valid Content-Length nor chunked framing
gets 411 "A valid Content-Length header is required".
"""

from __future__ import annotations

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import UNIT_BYTES, Config

MSG_TOO_LARGE = "Request size limit exceeded"
MSG_LENGTH_REQUIRED = "A valid Content-Length header is required"


class Handler(PluginHandler):
    name = "request-size-limiting"
    PRIORITY = 951
    VERSION = "3.9.1"
    needs_body = True

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.allowed = config.allowed_payload_size * UNIT_BYTES[config.size_unit]
        self.body_limit = self.allowed
        self.require_length = config.require_content_length

    def _too_large(self, ctx: RequestContext) -> None:
        expect = ctx.header("expect")
        if expect is not None and expect.strip().lower() == "100-continue":
            ctx.exit(417, MSG_TOO_LARGE)
        ctx.exit(413, MSG_TOO_LARGE)

    def access(self, ctx: RequestContext) -> None:
        length = ctx.header("content-length")
        if length is not None and length.isdigit():
            if int(length) > self.allowed:
                self._too_large(ctx)
            return
        if self.require_length:
            chunked = (ctx.header("transfer-encoding") or "").strip().lower() == "chunked"
            if not chunked:
                ctx.exit(411, MSG_LENGTH_REQUIRED)
        # the engine collected the body, bounded by body_limit (= allowed); check it anyway:
        # another plugin of the route may have asked for a larger bound
        if len(ctx.raw_body(self.allowed + 1)) > self.allowed:
            self._too_large(ctx)
