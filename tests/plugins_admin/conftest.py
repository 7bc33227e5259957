"""``admin_node``: one Admin-API-configured gateway node per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plugins_admin_kit import AdminNode


@pytest.fixture(scope="module")
def admin_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminNode]:
    node = AdminNode(tmp_path_factory.mktemp("admin-node"))
    try:
        yield node
    finally:
        node.close()
