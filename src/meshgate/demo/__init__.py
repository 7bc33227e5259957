"""Things `make run` starts so the demo works with nothing else installed."""
