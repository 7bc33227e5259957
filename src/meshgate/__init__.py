"""meshgate: the gateway admits, the mesh connects, Kafka streams."""

__version__ = "0.1.0"
