"""kafka-upstream: turn an HTTP request into a record on a topic and answer once it is stored."""
