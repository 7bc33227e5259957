"""oas-validation: in access, find the request's operation in the compiled document and
validate its path, query and header parameters and its JSON body (Kong Enterprise's
PRIORITY 850).  A failure answers 400 ``{"message": ...}`` — with ``verbose_response``,
what failed and where (the JSON pointer of the offending value in the body) — or, with
``notify_only_request_validation_failure``, is only logged.

Parameters arrive as strings and are coerced to their schema's type first (integer,
number, boolean; arrays split per style/explode).  Not supported: response validation,
cookie parameters, non-JSON body schemas, ``deepObject``-style objects (left as strings).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config
from .spec import CompiledSpec, Operation, Param, compile_spec

_log = logging.getLogger("meshgate.plugins.oas-validation")
GENERIC = "request doesn't conform to schema"


class Invalid(Exception):
    """One validation failure: a short public message and the detailed one."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _scalar(value: str, kind: str | None) -> Any:
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() and "." not in value else number
    except ValueError:
        return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def coerce(param: Param, values: Sequence[str]) -> Any:
    if param.kind == "array":
        items: list[str] = []
        if param.explode and param.where == "query":
            items = list(values)
        else:
            for value in values:
                items += value.split(",") if value else []
        return [
            _scalar(item.strip() if param.where == "header" else item, param.item_kind)
            for item in items
        ]
    return _scalar(values[0], param.kind)


def _errors(validator: Any, instance: Any, every: bool) -> list[str]:
    found = []
    for error in validator.iter_errors(instance):
        pointer = "/" + "/".join(str(p) for p in error.instance_path)
        found.append(f"{pointer}: {error.message}" if error.instance_path else error.message)
        if not every:
            break
    return found


def _media(content_type: str | None, op: Operation) -> tuple[str, Any] | None:
    if not op.body_types:
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in op.body_types:
        return media, op.body_types[media]
    major = media.split("/", 1)[0] + "/*"
    for candidate in (major, "*/*"):
        if candidate in op.body_types:
            return candidate, op.body_types[candidate]
    return None


class Handler(PluginHandler):
    name = "oas-validation"
    PRIORITY = 850
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.spec: CompiledSpec = compile_spec(
            config.api_spec, encoded=config.api_spec_encoded,
            include_base_path=config.include_base_path, custom_base_path=config.custom_base_path,
        )  # fmt: skip
        self.verbose = config.verbose_response
        self.notify_only = config.notify_only_request_validation_failure
        self.check_body = config.validate_request_body
        self.check_query = config.validate_request_query_params
        self.check_headers = config.validate_request_header_params
        self.check_path = config.validate_request_uri_params
        self.extra_query = config.query_parameter_check
        self.extra_headers = config.header_parameter_check
        self.allowed_headers = frozenset(
            h.strip().lower() for h in config.allowed_header_parameters.split(",") if h.strip()
        )
        self.every = config.collect_all_errors
        self.needs_body = self.check_body and self.spec.needs_body

    def access(self, ctx: RequestContext) -> None:
        try:
            self._validate(ctx)
        except Invalid as failure:
            if self.notify_only:
                _log.warning("oas-validation: %s %s: %s", ctx.method, ctx.path, failure.detail)
                return
            ctx.exit(400, failure.detail if self.verbose else GENERIC)

    def _validate(self, ctx: RequestContext) -> None:
        found = self.spec.find(ctx.path)
        if found is None:
            raise Invalid(f"path '{ctx.path}' not found in the api specification")
        ops, path_values = found
        op = ops.get(ctx.method)
        if op is None:
            raise Invalid(f"method '{ctx.method}' not allowed for path '{ctx.path}'")
        if op.params:
            self._params(ctx, op, path_values)
        if self.extra_query:
            unknown = sorted(set(ctx.query()) - op.query_names)
            if unknown:
                raise Invalid(f"query parameter '{unknown[0]}' is not defined in the specification")
        if self.extra_headers:
            declared = op.header_names | self.allowed_headers
            unknown = sorted(set(ctx.headers()) - declared)
            if unknown:
                raise Invalid(f"header '{unknown[0]}' is not defined in the specification")
        if self.check_body:
            self._body(ctx, op)

    def _params(self, ctx: RequestContext, op: Operation, path_values: dict[str, str]) -> None:
        query = ctx.query() if self.check_query else None
        for param in op.params:
            where = param.where
            if where == "path":
                if not self.check_path:
                    continue
                raw = path_values.get(param.name)
                values: Sequence[str] | None = [raw] if raw is not None else None
            elif where == "query":
                if query is None:
                    continue
                values = query.get(param.name)
            elif where == "header":
                if not self.check_headers:
                    continue
                values = ctx.headers().get(param.name)
            else:
                continue
            if not values:
                if param.required:
                    raise Invalid(f"{where} '{param.name}' is required")
                continue
            if param.validator is None:
                continue
            errors = _errors(param.validator, coerce(param, values), self.every)
            if errors:
                raise Invalid(
                    f"{where} '{param.name}' validation failed with error: '{'; '.join(errors)}'"
                )

    def _body(self, ctx: RequestContext, op: Operation) -> None:
        if not op.body_types:
            return
        content_type = ctx.header("content-type")
        if self.needs_body:
            raw = ctx.raw_body(self.body_limit)
        else:  # no JSON body in the document: the body was not buffered, only its presence counts
            length = ctx.header("content-length")
            present = bool(ctx.header("transfer-encoding")) or (length not in (None, "0"))
            raw = b"-" if present else b""
        if not raw:
            if op.body_required:
                raise Invalid("request body is required")
            return
        chosen = _media(content_type, op)
        if chosen is None:
            raise Invalid(
                f"content-type '{content_type or ''}' is not allowed by the specification"
            )
        _, validator = chosen
        if validator is None or not self.needs_body:
            return
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise Invalid("request body is not valid JSON") from None
        errors = _errors(validator, body, self.every)
        if errors:
            raise Invalid(f"request body validation failed with error: '{'; '.join(errors)}'")
