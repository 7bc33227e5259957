"""kafka-rest v3 streaming mode (concatenated records): one report per record in request
order, each partition's records stored in order, a too-large record failing alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from events_http_kit import build, call, close_logs, embedded, run

from meshgate.proxy.filters.testing import FakeContext


def test_rest_v3_streamed_records_get_ordered_reports(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-rest", embedded(tmp_path, max_record_bytes=50), res)
        await h.event_log.create_topic("s", 2)
        docs = [
            {"value": {"data": 1}, "partition_id": 1},
            {"value": {"data": "x" * 80}},
            {"value": {"type": "STRING", "data": "two"}, "partition_id": 0},
            {"value": {"data": 3}, "partition_id": 1},
        ]
        body = "\n".join(json.dumps(d) for d in docs).encode()
        answer = await call(h, FakeContext("POST", "/k/v3/clusters/meshgate/topics/s/records",
                                           body=body))  # fmt: skip
        assert answer.status == 200
        decoder = json.JSONDecoder()
        text, pos, reports = answer.body.decode(), 0, []
        while pos < len(text):
            report, pos = decoder.raw_decode(text, pos)
            reports.append(report)
        first, too_big, second, third = reports
        assert too_big["error_code"] == 413
        assert (first["partition_id"], first["offset"]) == (1, 0)
        assert (third["partition_id"], third["offset"]) == (1, 1)
        assert (second["partition_id"], second["offset"]) == (0, 0)
        assert second["value"] == {"type": "STRING", "size": 3}
        stored = (await h.event_log.fetch("s", 1, 0)).records
        assert [r.value for r in stored] == [b"1", b"3"]
        await close_logs(res)

    run(scenario())
