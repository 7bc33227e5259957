"""Kill the embedded log's fsync process mid-load: concurrent HTTP produces through a running
gateway (kafka-upstream on the embedded log, acks all); the log's fsync child gets SIGKILL while
they run.

Asserted: every request answered 2xx is in the log afterwards (read back from the directory,
matched by the unique id in each record); every other answer is 503 with Retry-After; produces
go on succeeding after the kill (the writer thread takes over), with no hang.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from events_http_kit import close_gateway_logs, embedded

from meshgate.events.embedded import EmbeddedEventLog
from meshgate.proxy.filters.testing_http import live_gateway, plugin, route

TOPIC = "fsync-kill"
CLIENTS = 8


def _fsync_children() -> list[int]:
    """PIDs of this process's children running the fsync child (the live gateway's loop
    thread started it, so look at every thread's children)."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"sync_child.py" in cmdline:
                found.append(int(pid))
    return found


def _produce_loop(
    port: int, stop: threading.Event, outcomes: list[tuple[str, int, str | None]]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        while not stop.is_set():
            record_id = uuid.uuid4().hex
            try:
                conn.request("POST", "/produce", body=json.dumps({"id": record_id}).encode(),
                             headers={"Content-Type": "application/json"})  # fmt: skip
                res = conn.getresponse()
                res.read()
                outcomes.append((record_id, res.status, res.getheader("Retry-After")))
            except (OSError, http.client.HTTPException):
                conn.close()
                outcomes.append((record_id, 0, None))
    finally:
        conn.close()


def _ids_in_log(directory: Path) -> set[str]:
    async def read() -> set[str]:
        log = await EmbeddedEventLog.open(directory, fsync_process=False)
        try:
            fetched = await log.fetch(TOPIC, 0, 0, max_records=1_000_000, max_bytes=1 << 30)
            return {json.loads(r.value or b"{}")["id"] for r in fetched.records}
        finally:
            await log.close()

    return asyncio.run(read())


def _wait_for_2xx(outcomes: list[tuple[str, int, str | None]], after: int) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(200 <= status < 300 for _, status, _ in outcomes[after:]):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(120)
def test_fsync_process_killed_mid_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    config = embedded(tmp_path / "log", topic=TOPIC, auto_create_topic=True,
                      message_format="raw", producer_request_acks=-1)  # fmt: skip
    routes = [route("produce", "/produce", service=None)]
    outcomes: list[tuple[str, int, str | None]] = []
    stop = threading.Event()
    others = set(_fsync_children())  # of logs other tests may not have closed yet
    with live_gateway(plugins=[plugin("kafka-upstream", config, route="produce")],
                      routes=routes) as gw:  # fmt: skip
        workers = [threading.Thread(target=_produce_loop, args=(gw.port, stop, outcomes))
                   for _ in range(CLIENTS)]  # fmt: skip
        for worker in workers:
            worker.start()
        try:
            assert _wait_for_2xx(outcomes, 0), "no produce succeeded before the kill"
            time.sleep(0.5)
            children = sorted(set(_fsync_children()) - others)
            assert len(children) == 1, f"one fsync child expected, found {children}"
            at_kill = len(outcomes)
            os.kill(children[0], signal.SIGKILL)
            time.sleep(0.3)
            at_fallback = len(outcomes)
            assert _wait_for_2xx(outcomes, at_fallback), "no produce succeeded after the kill"
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join(20)
        close_gateway_logs(gw)
    acknowledged = {rid for rid, status, _ in outcomes if 200 <= status < 300}
    failed = [(status, retry) for _, status, retry in outcomes if not 200 <= status < 300]
    stored = _ids_in_log(tmp_path / "log")
    print(f"{len(outcomes)} requests: {len(acknowledged)} acknowledged, {len(failed)} failed, "
          f"{len(stored)} stored, {len(outcomes) - at_kill} after the kill")  # fmt: skip
    lost = acknowledged - stored
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged records are not stored"
    assert any(200 <= status < 300 for _, status, _ in outcomes[:at_kill])
    assert all(status == 503 and retry and retry.isdigit() for status, retry in failed), failed
    assert len(failed) <= CLIENTS, "only the round in flight at the kill may fail"
