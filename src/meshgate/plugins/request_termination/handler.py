"""request-termination: in access, answer with the configured status and message/body
(or, with ``echo``, a copy of the request); with ``trigger``, only when a header or query
argument of that name is present (Kong's behaviour and PRIORITY 2)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.proxy.filters.messages import default_message
from meshgate.snapshot import PluginInstance

from .schema import Config

_NODE_ID = str(uuid.uuid4())


def _flat(values: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    return {k: (v[0] if len(v) == 1 else list(v)) for k, v in values.items()}


def _parsed_body(ctx: RequestContext, raw: bytes) -> Any:
    content_type = (ctx.header("content-type") or "").lower()
    try:
        if "json" in content_type:
            return json.loads(raw)
        if "application/x-www-form-urlencoded" in content_type:
            return _flat(parse_qs(raw.decode("utf-8"), keep_blank_values=True))
    except ValueError:
        return None
    return None


class Handler(PluginHandler):
    name = "request-termination"
    PRIORITY = 2
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.needs_body = config.echo
        self.trigger = config.trigger

    def access(self, ctx: RequestContext) -> None:
        conf = self.conf
        trigger = self.trigger  # header names ignore case, query argument names do not
        if trigger is not None and ctx.header(trigger) is None and trigger not in ctx.query():
            return None
        status = conf.status_code
        if conf.echo:
            raw = ctx.raw_body()
            route, service = ctx.route, ctx.service
            ctx.exit(
                status,
                {
                    "message": conf.message or default_message(status),
                    "kong": {
                        "node_id": _NODE_ID,
                        "worker_pid": os.getpid(),
                        "hostname": socket.gethostname(),
                    },
                    "request": {
                        "scheme": ctx.scheme,
                        "host": ctx.host,
                        "port": ctx.port,
                        "headers": _flat(ctx.headers()),
                        "query": _flat(ctx.query()),
                        "body": _parsed_body(ctx, raw),
                        "raw_body": raw.decode("utf-8", "replace"),
                        "method": ctx.method,
                        "path": ctx.path,
                    },
                    "matched_route": route.model_dump(mode="json") if route else None,
                    "matched_service": service.model_dump(mode="json") if service else None,
                },
            )
        if conf.body is not None:
            headers = {"Content-Type": conf.content_type} if conf.content_type else None
            ctx.exit(status, conf.body.encode(), headers)
        ctx.exit(status, conf.message or default_message(status))
