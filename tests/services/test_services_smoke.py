"""Smoke tests for the real PostgreSQL, Redis and Kafka started by scripts/services/up.sh.

Addresses come from MESHGATE_TEST_PG_DSN, MESHGATE_TEST_REDIS_URL and MESHGATE_TEST_KAFKA_BOOTSTRAP
(print them with scripts/services/env.sh). An unset variable skips its tests; a set variable that
points at a dead service makes them fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from psycopg import sql
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.services

START_HINT = 'start them with: eval "$(scripts/services/up.sh)"'
KAFKA_WAIT_S = 30.0


def _env_or_skip(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.skip(f"{name} is unset; {START_HINT}")
    return value


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_dsn() -> str:
    return _env_or_skip("MESHGATE_TEST_PG_DSN")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    url = _env_or_skip("MESHGATE_TEST_REDIS_URL")
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kafka_bootstrap() -> str:
    bootstrap = _env_or_skip("MESHGATE_TEST_KAFKA_BOOTSTRAP")
    # librdkafka retries a dead address quietly until its own timeouts; fail fast instead.
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        pytest.fail(f"Kafka at {bootstrap} is unreachable ({exc}); {START_HINT}")
    return bootstrap


class TopicFactory:
    """Creates uniquely named topics and remembers them so the fixture can delete them."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.names: list[str] = []

    def name(self, prefix: str) -> str:
        """A fresh topic name that is deleted at teardown (for topics created implicitly)."""
        topic = _unique(prefix)
        self.names.append(topic)
        return topic

    def create(self, prefix: str, partitions: int) -> str:
        topic = self.name(prefix)
        _create_topic(self.bootstrap, topic, partitions)
        return topic


@pytest.fixture
def kafka_topics(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    factory = TopicFactory(kafka_bootstrap)
    yield factory
    if factory.names:
        # Keeps the broker's data dir small across many runs; a failure here is not the test's.
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_topics(factory.names, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                future.result(timeout=15)


# --- PostgreSQL ------------------------------------------------------------------------------


def test_postgres_create_insert_select(pg_dsn: str) -> None:
    table = sql.Identifier(_unique("smoke").replace("-", "_"))
    with psycopg.connect(pg_dsn, connect_timeout=5, autocommit=True) as conn:
        assert conn.info.server_version >= 150000
        conn.execute(
            sql.SQL(
                "create table {} (id serial primary key, name text not null, doc jsonb)"
            ).format(table)
        )
        try:
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("insert into {} (name, doc) values (%s, %s)").format(table),
                    [(f"row-{n}", Jsonb({"n": n, "tags": ["a", "b"]})) for n in range(3)],
                )
            with conn.transaction(force_rollback=True):
                conn.execute(sql.SQL("insert into {} (name) values ('rolled-back')").format(table))
            rows = conn.execute(
                sql.SQL("select name, (doc->>'n')::int, doc->'tags' from {} order by id").format(
                    table
                )
            ).fetchall()
        finally:
            conn.execute(sql.SQL("drop table {}").format(table))
    assert rows == [(f"row-{n}", n, ["a", "b"]) for n in range(3)]


# --- Redis -----------------------------------------------------------------------------------


def test_redis_incr_expire_pipeline(redis_client: redis.Redis) -> None:
    key = f"meshgate:smoke:{uuid.uuid4().hex}"
    try:
        assert redis_client.incr(key) == 1
        assert redis_client.incrby(key, 5) == 6
        assert redis_client.ttl(key) == -1  # no expiry yet
        assert redis_client.expire(key, 30) is True
        assert 0 < int(redis_client.ttl(key)) <= 30

        with redis_client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            pipe.get(key)
            pipe.ttl(key)
            incremented, expire_set, value, ttl = pipe.execute()
        assert (incremented, expire_set, value) == (7, True, b"7")
        assert 30 < ttl <= 120
    finally:
        redis_client.delete(key)
    assert redis_client.exists(key) == 0


# --- Kafka -----------------------------------------------------------------------------------


def _admin(bootstrap: str) -> AdminClient:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Fails fast (KafkaException) when nothing answers at the bootstrap address.
    metadata = admin.list_topics(timeout=10)
    assert metadata.brokers, f"no broker in the metadata from {bootstrap}"
    return admin


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = _admin(bootstrap)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=15
    )
    futures[topic].result(timeout=20)
    deadline = time.monotonic() + KAFKA_WAIT_S
    while True:
        described = admin.list_topics(topic=topic, timeout=10).topics[topic]
        leaders = [p.leader for p in described.partitions.values()]
        if described.error is None and len(leaders) == partitions and min(leaders) >= 0:
            return
        assert time.monotonic() < deadline, f"topic {topic} has no leaders: {described}"
        time.sleep(0.1)


def _consume(consumer: Consumer, count: int) -> list[Message]:
    records: list[Message] = []
    deadline = time.monotonic() + KAFKA_WAIT_S
    while len(records) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            raise AssertionError(f"consumer error: {error}")
        records.append(message)
    assert len(records) == count, f"consumed {len(records)} of {count} records"
    return records


def _consumer(bootstrap: str, **extra: str | bool) -> Consumer:
    config: dict[str, str | bool] = {
        "bootstrap.servers": bootstrap,
        "group.id": _unique("smoke-group"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    config.update(extra)
    return Consumer(config)


def test_kafka_produce_consume_with_keys_and_headers(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics.create("smoke-keyed", partitions=3)

    reports: list[tuple[KafkaError | None, Message]] = []

    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for n in range(10):
        producer.produce(
            topic,
            key=f"key-{n}".encode(),
            value=f"value-{n}".encode(),
            headers=[("seq", str(n).encode()), ("source", b"smoke")],
            on_delivery=lambda error, message: reports.append((error, message)),
        )
    assert producer.flush(KAFKA_WAIT_S) == 0, "records still queued after flush"
    assert [error for error, _ in reports if error is not None] == []
    delivered = {m.key(): (m.partition(), m.offset()) for _, m in reports}
    assert len(delivered) == 10
    assert len({partition for partition, _ in delivered.values()}) > 1, "keys all hashed alike"

    consumer = _consumer(kafka_bootstrap)
    try:
        consumer.subscribe([topic])
        records = _consume(consumer, 10)
        committed_to = consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    by_key = {record.key(): record for record in records}
    assert set(by_key) == {f"key-{n}".encode() for n in range(10)}
    for n in range(10):
        record = by_key[f"key-{n}".encode()]
        assert record.value() == f"value-{n}".encode()
        assert record.headers() == [("seq", str(n).encode()), ("source", b"smoke")]
        assert (record.partition(), record.offset()) == delivered[f"key-{n}".encode()]
    assert committed_to is not None
    assert sum(tp.offset for tp in committed_to if tp.offset > 0) == 10


def test_kafka_transactional_producer_read_committed(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics.create("smoke-txn", partitions=1)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": _unique("smoke-txn")}
    )
    producer.init_transactions(KAFKA_WAIT_S)
    producer.begin_transaction()
    producer.produce(topic, key=b"aborted", value=b"never seen")
    producer.abort_transaction(KAFKA_WAIT_S)
    producer.begin_transaction()
    producer.produce(topic, key=b"committed", value=b"seen")
    producer.commit_transaction(KAFKA_WAIT_S)

    consumer = _consumer(kafka_bootstrap, **{"isolation.level": "read_committed"})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        (record,) = _consume(consumer, 1)
    finally:
        consumer.close()
    assert (record.key(), record.value()) == (b"committed", b"seen")


def test_kafka_auto_creates_topic_on_produce(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics.name("smoke-auto")
    admin = _admin(kafka_bootstrap)
    assert topic not in admin.list_topics(timeout=10).topics
    failures: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(
        topic,
        value=b"first",
        on_delivery=lambda error, _message: failures.append(error) if error else None,
    )
    assert producer.flush(KAFKA_WAIT_S) == 0
    assert failures == []
    assert topic in admin.list_topics(timeout=10).topics


def test_kcat_produces_and_confluent_kafka_consumes(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (scripts/services/kafka.sh start installs it)")
    topic = kafka_topics.create("smoke-kcat", partitions=1)
    lines = "".join(f"kc-{n}:from-kcat-{n}\n" for n in range(5))
    completed = subprocess.run(
        [kcat, "-P", "-b", kafka_bootstrap, "-t", topic, "-p", "0", "-K", ":", "-H", "origin=kcat"],
        input=lines.encode(),
        capture_output=True,
        timeout=KAFKA_WAIT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")

    consumer = _consumer(kafka_bootstrap)
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        records = _consume(consumer, 5)
    finally:
        consumer.close()
    assert [(r.key(), r.value(), r.headers()) for r in records] == [
        (f"kc-{n}".encode(), f"from-kcat-{n}".encode(), [("origin", b"kcat")]) for n in range(5)
    ]
    assert [r.offset() for r in records] == list(range(5))
