"""meshgate-plugin-hello: a worked example of a third-party meshgate plugin."""
