"""file-log: config rules, JSON lines appended, reopen after rotation, flush on stop, and
through a running gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from logsink_kit import await_until

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, arun_phases, make_handler
from meshgate.proxy.filters.testing_http import live_gateway, plugin


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({}, "config.path", "Field required"),
        ({"path": " /tmp/x"}, "config.path", "not a valid filename"),
        ({"path": "/tmp/a*b"}, "config.path", "not a valid filename"),
        ({"path": "/tmp/x", "custom_fields_by_lua": {"k": "return 1"}}, "config.custom_fields_by_lua",
         "not supported"),
    ],
)  # fmt: skip
def test_config_errors(config: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("file-log", config)
    got = caught.value.to_fields()
    assert path in got, got
    assert message in got[path], got


def test_lines_are_appended_and_flushed_on_stop(tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    target.write_text("existing\n")

    async def scenario() -> None:
        handler = make_handler("file-log", {"path": str(target)})
        await handler.start()
        for i in range(5):
            await arun_phases(handler, FakeContext("GET", f"/f/{i}"))
        await handler.stop()

    asyncio.run(scenario())
    lines = target.read_text().splitlines()
    assert lines[0] == "existing"
    assert [json.loads(line)["request"]["uri"] for line in lines[1:]] == [
        f"/f/{i}" for i in range(5)
    ]


def test_reopen_follows_a_rotated_file(tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"

    async def scenario() -> None:
        handler = make_handler("file-log", {"path": str(target), "reopen": True})
        await handler.start()
        await arun_phases(handler, FakeContext("GET", "/before"))
        queue = handler.queue  # type: ignore[attr-defined]
        await await_until(lambda: queue.sent >= 1)
        target.rename(rotated)
        await arun_phases(handler, FakeContext("GET", "/after"))
        await handler.stop()

    asyncio.run(scenario())
    assert json.loads(rotated.read_text())["request"]["uri"] == "/before"
    assert json.loads(target.read_text())["request"]["uri"] == "/after"


def test_unwritable_path_drops_and_counts(tmp_path: Path) -> None:
    async def scenario() -> Any:
        handler = make_handler("file-log", {"path": str(tmp_path / "missing-dir" / "x.log")})
        handler.queue.limits = type(handler.queue.limits)(max_batch_size=10, max_retry_time=0.1)  # type: ignore[attr-defined]
        await handler.start()
        await arun_phases(handler, FakeContext("GET", "/x"))
        queue = handler.queue  # type: ignore[attr-defined]
        await await_until(lambda: queue.failed >= 1)
        await handler.stop()
        return queue

    assert asyncio.run(scenario()).failed == 1


def test_through_a_running_gateway(tmp_path: Path) -> None:
    target = tmp_path / "gw.log"
    with live_gateway(plugins=[plugin("file-log", {"path": str(target)}, route="r1")]) as gw:
        assert gw.request("GET", "/r1/a").status == 200
        assert gw.request("GET", "/r1/b").status == 200
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["request"]["uri"] for r in records] == ["/r1/a", "/r1/b"]
    assert records[0]["upstream_uri"] == "/r1/a"
