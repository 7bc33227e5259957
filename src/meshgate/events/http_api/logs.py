"""``event_log_for(config, env)``: the node's ``EventLog`` for a plugin's backend settings.

One log per backend target per node (``env.node_resource``; without an env, per process), so
every plugin instance and every snapshot reuses the same embedded directory or Kafka client.
The returned object opens the backend lazily on first use inside the serving event loop (the
embedded log and the Kafka client bind to the loop that opens them). An open that fails is
reported as ``BrokerUnavailable`` (503 + Retry-After) and retried on the next call — e.g. an
embedded directory locked by another worker process (the embedded log serves one process:
run ``--workers 1`` or the kafka backend).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshgate.events.api import (
    Acks,
    EventLog,
    FetchResult,
    GroupMember,
    OffsetReset,
    ProduceInto,
    ProduceRecord,
    RecordMetadata,
    TopicInfo,
)
from meshgate.events.errors import BrokerUnavailable, EventLogError, LogLocked
from meshgate.events.http_api.settings import BackendFields

if TYPE_CHECKING:
    from meshgate.proxy.filters.api import CompileEnv

_process_logs: dict[str, LazyEventLog] = {}


def runtime_dir() -> Path:
    """Where node-local event-gateway files live when a config names no directory."""
    base = os.environ.get("MESHGATE_RUNTIME_DIR")
    return Path(base) / "events" if base else Path("meshgate-events")


def embedded_path(settings: BackendFields) -> Path:
    return Path(settings.embedded.path).resolve() if settings.embedded.path else runtime_dir()


def kafka_client_config(settings: BackendFields, env: CompileEnv | None) -> dict[str, Any]:
    """librdkafka settings for ``authentication``/``security`` (Kong's fields)."""
    config: dict[str, Any] = {}
    auth, security = settings.authentication, settings.security
    sasl = auth.strategy == "sasl"
    config["security.protocol"] = (
        ("SASL_SSL" if sasl else "SSL")
        if security.ssl
        else ("SASL_PLAINTEXT" if sasl else "PLAINTEXT")
    )
    if sasl:
        config["sasl.mechanisms"] = auth.mechanism
        config["sasl.username"] = auth.user
        config["sasl.password"] = auth.password or ""
    if security.ssl and not security.ssl_verify:
        config["enable.ssl.certificate.verification"] = False
    if security.certificate_id and env is not None:
        for cert in env.snapshot.certificates:
            if cert.id == security.certificate_id:
                config["ssl.certificate.pem"] = cert.cert
                config["ssl.key.pem"] = cert.key
                break
        else:
            raise ValueError(f"certificate {security.certificate_id!r} not found")
    return config


def _target(settings: BackendFields) -> str:
    if settings.backend == "embedded":
        return f"embedded://{embedded_path(settings)}"
    servers = ",".join(f"{s.host}:{s.port}" for s in settings.bootstrap_servers or ())
    return f"kafka://{servers}"


def event_log_for(settings: BackendFields, env: CompileEnv | None = None) -> EventLog:
    """The node-wide log these settings name (see the module docstring)."""
    client_config = kafka_client_config(settings, env) if settings.backend == "kafka" else {}
    options: dict[str, Any] = {}
    if settings.backend == "kafka":  # Kong's socket ``timeout`` bounds broker calls and close
        seconds = settings.timeout / 1000
        options = {"request_timeout": seconds, "close_timeout": min(5.0, seconds)}
    key = (
        f"events-log {_target(settings)} {sorted(client_config.items())} {sorted(options.items())}"
    )

    def factory() -> LazyEventLog:
        return LazyEventLog(_target(settings), client_config, options)

    if env is not None:
        log: LazyEventLog = env.node_resource(key, factory)
        return log
    found = _process_logs.get(key)
    if found is None:
        found = _process_logs[key] = factory()
    return found


class LazyEventLog:
    """An ``EventLog`` that opens its backend on first use (see the module docstring)."""

    def __init__(
        self,
        target: str,
        client_config: Mapping[str, Any],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.client_config = dict(client_config)
        self.options = dict(options or {})
        self._log: EventLog | None = None
        self._fast: ProduceInto | None = None  # the opened log, when it has the fast path
        self._lock: asyncio.Lock | None = None
        self._closed = False

    async def opened(self) -> EventLog:
        log = self._log
        if log is not None:
            return log
        if self._closed:
            raise BrokerUnavailable("the event log is closed (node shutting down)")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._log is None:
                self._log = log = await self._open()
                inner = getattr(log, "produce_target", log)  # a wrapper's own log
                self._fast = inner if isinstance(inner, ProduceInto) else None
            return self._log

    async def _open(self) -> EventLog:
        scheme, _, rest = self.target.partition("://")
        try:
            if scheme == "embedded":
                # One process of the node owns the log and serves it on a unix socket; the
                # node's other workers use it through that socket (events.bridge).
                from meshgate.events.bridge import open_shared_event_log
                from meshgate.events.embedded import EmbeddedEventLog

                socket_path = _node_socket_for(rest)
                if socket_path is None:  # not under a meshgate node: this process only
                    return await EmbeddedEventLog.open(rest)
                return await open_shared_event_log(rest, socket_path)
            from meshgate.events.kafka import KafkaEventLog

            return KafkaEventLog(rest, client_config=self.client_config, **self.options)
        except LogLocked as exc:
            raise BrokerUnavailable(
                f"embedded event log {rest} is owned by another process ({exc}); "
                "run one worker or use backend kafka",
                retry_after=5.0,
            ) from exc
        except EventLogError:
            raise
        except OSError as exc:
            raise BrokerUnavailable(f"cannot open event log {self.target}: {exc}") from exc

    async def produce(
        self,
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
        timeout: float = 30.0,
    ) -> list[RecordMetadata]:
        log = await self.opened()
        return await log.produce(topic, records, partition=partition, acks=acks, timeout=timeout)

    def produce_into(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
    ) -> bool:
        """The opened backend's fast path (``api.ProduceInto``); False before the first
        ``produce`` opened it, or when the backend has none (the bridge client)."""
        fast = self._fast
        if fast is None:
            return False
        return fast.produce_into(future, topic, records, partition=partition, acks=acks)

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int = 500,
        max_bytes: int = 1024 * 1024,
        max_wait: float = 0.0,
    ) -> FetchResult:
        log = await self.opened()
        return await log.fetch(
            topic, partition, offset, max_records=max_records, max_bytes=max_bytes,
            max_wait=max_wait,
        )  # fmt: skip

    async def offsets_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        return await (await self.opened()).offsets_for_time(topic, partition, timestamp_ms)

    async def earliest(self, topic: str, partition: int) -> int:
        return await (await self.opened()).earliest(topic, partition)

    async def latest(self, topic: str, partition: int) -> int:
        return await (await self.opened()).latest(topic, partition)

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        await (await self.opened()).commit(group, offsets)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        return await (await self.opened()).committed(group, topic)

    async def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        return await (await self.opened()).create_topic(name, partitions, config)

    async def describe_topic(self, name: str) -> TopicInfo:
        return await (await self.opened()).describe_topic(name)

    async def list_topics(self) -> list[str]:
        return await (await self.opened()).list_topics()

    async def delete_topic(self, name: str) -> None:
        await (await self.opened()).delete_topic(name)

    async def join_group(
        self, group: str, topics: Sequence[str], *, auto_offset_reset: OffsetReset = "earliest"
    ) -> GroupMember:
        log = await self.opened()
        return await log.join_group(group, topics, auto_offset_reset=auto_offset_reset)

    async def close(self) -> None:
        self._closed = True
        log, self._log, self._fast = self._log, None, None
        if log is not None:
            await log.close()


def _node_socket_for(root: str) -> str | None:
    """Where the node serves the embedded log at ``root`` (None outside a meshgate node)."""
    runtime_dir = os.environ.get("MESHGATE_RUNTIME_DIR")
    if not runtime_dir:
        return None
    digest = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:12]
    return os.path.join(runtime_dir, f"events-{digest}.sock")
