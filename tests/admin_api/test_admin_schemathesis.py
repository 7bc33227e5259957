"""Schemathesis against ``/openapi.json`` of a real Admin API server: no 5xx, and every
response has a documented status, content type and schema.  Bounded: a few generated cases
per operation, operations split into groups so each test stays well under the timeout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from meshgate.controlplane.admin_api import NodeInfo, create_admin_app, serve_admin
from meshgate.controlplane.admin_api.app import AdminServer
from meshgate.store import Store, open_store
from testkit import BackgroundLoop

EXAMPLES_PER_OPERATION = 3  # positive and negative (schema-violating) cases mixed
GROUPS = [
    "/services",
    "/routes",
    "/upstreams",
    "/consumers",
    "/plugins",
    "/certificates",
    "/snis",
    "/ca_certificates",
    "/key-auths",
    "/basic-auths",
    "/hmac-auths",
    "/jwts",
    "/acls",
    "/schemas",
    "/config",
    "/tags",
    "other",
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


@pytest.fixture(scope="module")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    loop = BackgroundLoop()
    path: Path = tmp_path_factory.mktemp("schemathesis") / "admin.db"

    async def start() -> tuple[Store, AdminServer]:
        store = await open_store(f"sqlite://{path}")
        app = create_admin_app(store, node_info=NodeInfo(), max_body_bytes=64 * 1024)
        return store, await serve_admin(app, "127.0.0.1", 0)

    store, server = loop.run(start())
    yield f"http://127.0.0.1:{server.port}"
    loop.run(server.stop())
    loop.run(store.close())
    loop.close()


@pytest.fixture(scope="module")
def admin_schema(admin_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{admin_url}/openapi.json")


def _group_of(path: str) -> str:
    top = "/" + path.strip("/").split("/")[0]
    return top if top in GROUPS else "other"


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_admin_api_conforms_to_its_openapi(admin_schema: Any, group: str) -> None:
    operations = [
        result.ok()
        for result in admin_schema.get_all_operations()
        if _group_of(result.ok().path) == group
    ]
    assert operations, group
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples every run: CI must not hinge on a draw
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(checks=CHECKS, timeout=10)

        run()


def test_unicode_digits_in_size_are_a_400_not_a_500(admin_url: str) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{admin_url}/certificates?size=%C2%B3", timeout=5)
    assert caught.value.code == 400
    caught.value.close()
