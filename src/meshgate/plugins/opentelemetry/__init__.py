"""opentelemetry: trace every request (W3C/B3/Jaeger/OT propagation) and export the spans
over OTLP/HTTP to a collector."""
