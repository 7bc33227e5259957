"""Kong's decK CLI against meshgate's Admin API (SQLite store in a temp dir): validate, sync,
diff, dump and reset round-trip a realistic config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from deck_kit import canonical, deck_binary, realistic_config, run_deck

from meshgate.controlplane.admin_api import NodeInfo, create_admin_app, serve_admin
from meshgate.controlplane.admin_api.app import AdminServer
from meshgate.resources import load_file
from meshgate.store import Store, open_store
from testkit import BackgroundLoop

pytestmark = pytest.mark.slow


class Gateway:
    """The Admin API on a free port, backed by a fresh SQLite store."""

    def __init__(self, loop: BackgroundLoop, store: Store, server: AdminServer) -> None:
        self.loop = loop
        self.store = store
        self.server = server
        self.addr = f"http://127.0.0.1:{server.port}"

    def count(self, entity_type: str) -> int:
        return len(self.loop.run(self.store.list(entity_type, size=1000)).data)


@pytest.fixture
def gateway(tmp_path: Path, background_loop: BackgroundLoop) -> Iterator[Gateway]:
    async def start() -> tuple[Store, AdminServer]:
        store = await open_store(f"sqlite://{tmp_path / 'deck.db'}")
        server = await serve_admin(create_admin_app(store, node_info=NodeInfo()), "127.0.0.1", 0)
        return store, server

    store, server = background_loop.run(start())
    yield Gateway(background_loop, store, server)
    background_loop.run(server.stop())
    background_loop.run(store.close())


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "kong.yaml"
    path.write_text(yaml.safe_dump(realistic_config(), sort_keys=False))
    return path


def test_deck_sync_diff_dump_reset(gateway: Gateway, state_file: Path, tmp_path: Path) -> None:
    deck = deck_binary()
    addr = ("--kong-addr", gateway.addr)
    run_deck(deck, "gateway", "ping", *addr)

    sync = run_deck(deck, "gateway", "sync", str(state_file), *addr)
    assert "Created: " in sync.stdout
    assert gateway.count("services") == 2
    assert gateway.count("routes") == 3
    assert gateway.count("targets") == 2
    assert gateway.count("plugins") == 5
    assert gateway.count("keyauth_credentials") == 2
    assert gateway.count("snis") == 1

    diff = run_deck(deck, "gateway", "diff", str(state_file), *addr, "--non-zero-exit-code",
                    check=False)  # fmt: skip
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "Created: 0" in diff.stdout
    assert "Updated: 0" in diff.stdout
    assert "Deleted: 0" in diff.stdout

    dumped = tmp_path / "dumped.yaml"
    run_deck(deck, "gateway", "dump", *addr, "-o", str(dumped), "--yes")
    assert canonical(load_file(dumped)) == canonical(load_file(state_file))

    again = run_deck(deck, "gateway", "sync", str(dumped), *addr)
    assert "Updated: 0" in again.stdout

    changed = yaml.safe_load(state_file.read_text())
    changed["services"][0]["retries"] = 7
    del changed["consumers"][1]
    state_file.write_text(yaml.safe_dump(changed, sort_keys=False))
    pending = run_deck(deck, "gateway", "diff", str(state_file), *addr)
    assert "Updated: 1" in pending.stdout
    run_deck(deck, "gateway", "sync", str(state_file), *addr)
    assert gateway.loop.run(gateway.store.get_by_key("services", "name", "orders"))["retries"] == 7
    assert gateway.count("consumers") == 1
    assert gateway.count("hmacauth_credentials") == 0

    run_deck(deck, "gateway", "reset", *addr, "--force")
    for entity_type in ("services", "routes", "upstreams", "targets", "consumers", "plugins",
                        "certificates", "snis", "ca_certificates", "keyauth_credentials",
                        "basicauth_credentials", "acls"):  # fmt: skip
        assert gateway.count(entity_type) == 0, entity_type


def test_deck_validate(gateway: Gateway, state_file: Path, tmp_path: Path) -> None:
    deck = deck_binary()
    addr = ("--kong-addr", gateway.addr)
    run_deck(deck, "gateway", "validate", str(state_file), *addr)
    broken = yaml.safe_load(state_file.read_text())
    broken["services"][0]["routes"][0]["paths"] = ["no-leading-slash"]
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(broken, sort_keys=False))
    result = run_deck(deck, "gateway", "validate", str(bad_file), *addr, check=False)
    assert result.returncode != 0
    assert gateway.count("services") == 0
