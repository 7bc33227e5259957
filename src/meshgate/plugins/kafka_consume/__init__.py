"""kafka-consume: read a topic over HTTP — long-poll GET, Server-Sent Events or WebSocket."""
