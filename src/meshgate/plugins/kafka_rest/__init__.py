"""kafka-rest: a Confluent-REST-shaped produce API (v2 and v3 bodies) on a route."""
