"""The plugin runtime: Kong's phases over the proxy engine, and the request context plugins see."""
