"""correlation-id: give every request an id in a header, optionally echoed to the client."""
