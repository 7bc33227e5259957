"""End to end through ``meshgate run -c kong.yaml``: an event route on the embedded log —
produce over HTTP, read back with GET and SSE, and after a gateway restart the records, the
cursor and the idempotency keys are all still good."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from events_http_kit import StreamClient

from testkit import Gateway, free_port

CONFIG = """\
_format_version: "3.0"
routes:
  - name: orders-in
    paths: ["/orders"]
    methods: ["POST"]
    plugins:
      - name: kafka-upstream
        config: {{topic: orders, message_format: raw, auto_create_topic: true,
                  embedded: {{path: "{data}"}}}}
  - name: orders-out
    paths: ["/orders"]
    methods: ["GET"]
    plugins:
      - name: kafka-consume
        config: {{topics: [{{name: orders}}], auto_offset_reset: earliest,
                  cursor_secret: "a-shared-secret-for-all-nodes", long_poll_timeout: 200,
                  embedded: {{path: "{data}"}}}}
  - name: orders-live
    paths: ["/live"]
    plugins:
      - name: kafka-consume
        config: {{topics: [{{name: orders}}], mode: server-sent-events, heartbeat_interval: 200,
                  auto_offset_reset: earliest, cursor_secret: "a-shared-secret-for-all-nodes",
                  embedded: {{path: "{data}"}}}}
"""


@pytest.mark.slow
def test_event_route_survives_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "kong.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "events"))
    port = free_port()
    gw = Gateway(config, port)
    try:
        status, _, body = gw.request("POST", "/orders", {"Idempotency-Key": "o-1"}, b'{"id":1}')
        assert status == 200, body
        first = json.loads(body)
        status, headers, body = gw.request("GET", "/orders")
        assert status == 200, body
        assert [r["value"] for r in json.loads(body)["records"]] == [{"id": 1}]
        cursor = headers["meshgate-cursor"]
    finally:
        gw.stop()
    gw = Gateway(config, port)
    try:
        status, headers, body = gw.request(
            "POST", "/orders", {"Idempotency-Key": "o-1"}, b'{"id":1}'
        )
        assert status == 200
        assert json.loads(body) == first
        assert headers["idempotent-replayed"] == "true"
        gw.request("POST", "/orders", None, b'{"id":2}')
        status, _, body = gw.request("GET", f"/orders?cursor={cursor}")
        assert [r["value"] for r in json.loads(body)["records"]] == [{"id": 2}]
        stream = StreamClient(port, "/live")
        events = stream.sse_events(2)
        assert [json.loads(e.data)["value"]["id"] for e in events] == [1, 2]
        stream.close()
    finally:
        gw.stop()


@pytest.mark.slow
def test_a_live_stream_opened_before_the_topic_exists_gets_its_first_record(
    tmp_path: Path,
) -> None:
    config = tmp_path / "kong.yaml"
    text = CONFIG.format(data=tmp_path / "events")
    text = text.replace(
        "mode: server-sent-events,", "mode: server-sent-events, auto_create_topic: true,"
    )
    config.write_text(text)
    port = free_port()
    gw = Gateway(config, port)
    try:
        stream = StreamClient(port, "/live")
        assert stream.status == 200
        status, _, body = gw.request("POST", "/orders", None, b'{"id":7}')
        assert status == 200, body
        [event] = stream.sse_events(1)
        assert json.loads(event.data)["value"] == {"id": 7}
        stream.close()
    finally:
        gw.stop()
