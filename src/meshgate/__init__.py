"""meshgate: the gateway admits, the mesh connects, Kafka streams."""

from meshgate import _native

__version__ = "0.1.0"

_native.choose()  # before any engine module is imported: compiled or interpreted
