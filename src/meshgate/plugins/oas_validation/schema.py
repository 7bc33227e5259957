"""oas-validation config, as Kong Enterprise's.  ``api_spec`` is the whole OpenAPI 3.0/3.1
document (JSON or YAML; URI-encoded when ``api_spec_encoded``); it is parsed and compiled
when the config is validated, so a broken spec is refused at ``config.api_spec``."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    api_spec_encoded: bool = Field(default=True, description="Whether api_spec is URI-encoded.")
    verbose_response: bool = Field(
        default=False, description="Say in the 400 answer what failed validation, and where."
    )
    validate_request_body: bool = Field(default=True, description="Validate JSON bodies.")
    validate_request_header_params: bool = Field(
        default=True, description="Validate header parameters."
    )
    validate_request_query_params: bool = Field(
        default=True, description="Validate query parameters."
    )
    validate_request_uri_params: bool = Field(default=True, description="Validate path parameters.")
    notify_only_request_validation_failure: bool = Field(
        default=False, description="Only log request validation failures; let requests through."
    )
    validate_response_body: bool = Field(
        default=False, description="Accepted for compatibility; response bodies are not validated."
    )
    notify_only_response_body_validation_failure: bool = Field(
        default=False, description="Accepted for compatibility (see validate_response_body)."
    )
    header_parameter_check: bool = Field(
        default=False,
        description="Refuse headers the operation does not declare (except allowed_header_parameters).",
    )
    query_parameter_check: bool = Field(
        default=False, description="Refuse query parameters the operation does not declare."
    )
    allowed_header_parameters: str = Field(
        default="Host,Content-Type,User-Agent,Accept,Content-Length",
        description="Comma-separated headers always allowed by header_parameter_check.",
    )
    include_base_path: bool = Field(
        default=False, description="Prefix spec paths with the path of servers[0].url."
    )
    custom_base_path: str | None = Field(
        default=None, description="Prefix spec paths with this path (wins over include_base_path)."
    )
    collect_all_errors: bool = Field(
        default=False, description="Report every validation error, not only the first."
    )

    # after the fields it depends on, so its validator sees them
    api_spec: str = Field(description="The OpenAPI 3.0/3.1 document (JSON or YAML).")

    @field_validator("api_spec")
    @classmethod
    def _compiles(cls, value: str, info: ValidationInfo) -> str:
        from .spec import SpecError, compile_spec

        data = info.data
        try:
            compile_spec(
                value,
                encoded=data.get("api_spec_encoded", True),
                include_base_path=data.get("include_base_path", False),
                custom_base_path=data.get("custom_base_path"),
            )
        except SpecError as exc:
            raise ValueError(str(exc)) from None
        return value
