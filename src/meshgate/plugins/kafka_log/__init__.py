"""kafka-log: access logs (Kong's serializer) as records on a topic, batched, bounded."""
