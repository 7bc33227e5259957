"""The Kafka backend of the event log (confluent-kafka / librdkafka)."""

from meshgate.events.kafka.log import KafkaEventLog

__all__ = ["KafkaEventLog"]
