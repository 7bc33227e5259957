"""Kill the real broker mid-load: a private single-node Kafka (its own state dir and ports,
started by scripts/services/kafka-instance.sh — the shared broker is never touched) takes
concurrent HTTP produces through the gateway (kafka-upstream, backend kafka, acks all); it is
killed with SIGKILL and started again while the load runs.

Asserted: every request answered 2xx is in the topic afterwards (read back from the beginning,
matched by the unique id in each record); every other answer is 503 with Retry-After, given
within the configured produce timeout (no hang); produces succeed again after the restart.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from events_http_kit import close_gateway_logs

from meshgate.proxy.filters.testing_http import LiveGateway, live_gateway, plugin, route

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
INSTANCE_SCRIPT = REPO / "scripts" / "services" / "kafka-instance.sh"
TOPIC = "killed-broker"
PRODUCE_TIMEOUT_MS = 2000
CLIENTS = 12
# answer time allowed beyond the produce timeout (metadata wait, a loaded 2-core machine)
ANSWER_SLACK_S = 3.0


@dataclass(frozen=True)
class Outcome:
    record_id: str
    status: int  # 0: no HTTP answer (connection error or client timeout)
    retry_after: str | None
    seconds: float


class Broker:
    """The private broker: start, SIGKILL and restart by the PID its pidfile holds."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port, self.controller_port = _free_port(), _free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, action: str) -> None:
        args = [str(INSTANCE_SCRIPT), str(self.state_dir), str(self.port),
                str(self.controller_port), action]  # fmt: skip
        done = subprocess.run(["bash", *args], capture_output=True, text=True, timeout=100)
        if done.returncode != 0:
            raise RuntimeError(f"kafka-instance.sh {action} failed:\n{done.stderr[-3000:]}")

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")

    def kill(self) -> None:
        pid = int((self.state_dir / "kafka" / "kafka.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if "Z" in _proc_state(pid):
                break
            time.sleep(0.05)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if os.environ.get("MESHGATE_TEST_KAFKA_BOOTSTRAP") is None:
        pytest.skip('Kafka services are not set up: eval "$(bash scripts/services/env.sh)"')
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    instance = Broker(tmp_path / "broker")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def _produce_loop(port: int, stop: threading.Event, outcomes: list[Outcome]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        while not stop.is_set():
            record_id = uuid.uuid4().hex
            started = time.monotonic()
            try:
                conn.request("POST", "/produce", body=json.dumps({"id": record_id}).encode(),
                             headers={"Content-Type": "application/json"})  # fmt: skip
                res = conn.getresponse()
                res.read()
                outcome = Outcome(record_id, res.status, res.getheader("Retry-After"),
                                  time.monotonic() - started)  # fmt: skip
                if res.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                outcome = Outcome(record_id, 0, None, time.monotonic() - started)
            outcomes.append(outcome)
    finally:
        conn.close()


def _ids_in_topic(bootstrap: str) -> set[str]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=20)
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        found: set[str] = set()
        position = 0
        deadline = time.monotonic() + 30
        while position < high and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                if message.error() is not None:
                    continue
                position = message.offset() + 1
                found.add(json.loads(message.value())["id"])
        assert position >= high, f"read {position} of {high} records"
        return found
    finally:
        consumer.close()


def _wait_for_2xx(outcomes: list[Outcome], after: int, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(200 <= o.status < 300 for o in outcomes[after:]):
            return True
        time.sleep(0.1)
    return False


def _gateway_plugins(bootstrap: str) -> list[object]:
    host, _, port = bootstrap.rpartition(":")
    config = {"backend": "kafka", "bootstrap_servers": [{"host": host, "port": int(port)}],
              "auto_create_topic": True, "topic": TOPIC, "message_format": "raw",
              "producer_request_acks": -1, "producer_request_timeout": PRODUCE_TIMEOUT_MS,
              "timeout": PRODUCE_TIMEOUT_MS}  # fmt: skip
    return [plugin("kafka-upstream", config, route="produce")]


def _load_through_kill(gw: LiveGateway, broker: Broker) -> tuple[list[Outcome], int, int]:
    """Run the load; kill the broker and restart it meanwhile. Returns the outcomes and how
    many had been collected at the kill and at the restart."""
    outcomes: list[Outcome] = []
    stop = threading.Event()
    workers = [threading.Thread(target=_produce_loop, args=(gw.port, stop, outcomes))
               for _ in range(CLIENTS)]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        assert _wait_for_2xx(outcomes, 0, 20), "no produce succeeded before the kill"
        time.sleep(1.5)
        at_kill = len(outcomes)
        broker.kill()
        time.sleep(PRODUCE_TIMEOUT_MS / 1000 + 1)  # requests time out while it is down
        broker.start()
        at_restart = len(outcomes)
        assert _wait_for_2xx(outcomes, at_restart, 30), "no produce succeeded after the restart"
        time.sleep(1.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(20)
    return outcomes, at_kill, at_restart


@pytest.mark.timeout(240)
def test_broker_killed_mid_load_loses_nothing_acknowledged(broker: Broker) -> None:
    routes = [route("produce", "/produce", service=None)]
    with live_gateway(plugins=_gateway_plugins(broker.bootstrap), routes=routes) as gw:
        outcomes, at_kill, at_restart = _load_through_kill(gw, broker)
        close_gateway_logs(gw)
    acknowledged = {o.record_id for o in outcomes if 200 <= o.status < 300}
    failed = [o for o in outcomes if not 200 <= o.status < 300]
    stored = _ids_in_topic(broker.bootstrap)
    print(f"{len(outcomes)} requests: {len(acknowledged)} acknowledged, {len(failed)} failed "
          f"({sorted({o.status for o in failed})}), {len(stored)} records in the topic, slowest "
          f"answer {max(o.seconds for o in outcomes):.2f}s")  # fmt: skip

    lost = acknowledged - stored
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged records are not in the topic"
    assert failed, "the broker outage produced no failed request (was it really killed?)"
    assert any(200 <= o.status < 300 for o in outcomes[:at_kill])
    assert any(200 <= o.status < 300 for o in outcomes[at_restart:])
    not_503 = sorted({o.status for o in failed if o.status != 503})
    assert not not_503, f"failures other than 503: statuses {not_503}"
    assert all(o.retry_after and o.retry_after.isdigit() for o in failed)
    limit = PRODUCE_TIMEOUT_MS / 1000 + ANSWER_SLACK_S
    slowest = max(o.seconds for o in outcomes)
    assert slowest <= limit, f"an answer took {slowest:.1f}s (timeout {limit:.1f}s)"
