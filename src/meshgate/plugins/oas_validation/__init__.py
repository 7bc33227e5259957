"""oas-validation: validate requests against an OpenAPI 3 document (Kong Enterprise's plugin
name and config) — path, method, path/query/header parameters and JSON bodies."""
