"""prometheus: Kong's metrics (``kong_http_requests_total``, latency histograms, bandwidth,
upstream target health) plus meshgate's connection and process metrics, node-wide across
worker processes; ``exposition.render_metrics()`` is what ``/metrics`` serves."""
