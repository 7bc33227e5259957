"""acl with FakeContext: allow/deny on consumer groups, authenticated groups, Kong's 401/403,
the groups header, and acl after an auth plugin in one chain."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.snapshot import Consumer


def groups(*names: str) -> dict[str, tuple[dict[str, str], ...]]:
    return {"acls": tuple({"id": f"g-{n}", "group": n} for n in names)}


ADMIN = Consumer(
    id="c-admin",
    username="admin",
    credentials={**groups("admin", "staff"), "keyauth_credentials": ({"id": "k1", "key": "adm"},)},
)
STAFF = Consumer(id="c-staff", username="staff", credentials=groups("staff"))
LONER = Consumer(
    id="c-loner",
    username="loner",
    credentials={"keyauth_credentials": ({"id": "k2", "key": "lon"},)},
)
CONSUMERS = [ADMIN, STAFF, LONER]
CRED = {"id": "cred"}


def run(config: dict[str, Any], **ctx_args: Any):  # type: ignore[no-untyped-def]
    ctx = FakeContext(**ctx_args)
    return ctx, run_phases(make_handler("acl", config, consumers=CONSUMERS), ctx)


def message(res) -> str:  # type: ignore[no-untyped-def]
    return str(json.loads(res.body)["message"])


@pytest.mark.parametrize(
    ("config", "text"),
    [
        ({}, "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"),
        ({"allow": []}, "at least one of these fields must be non-empty"),
        ({"allow": ["a"], "deny": ["b"]}, "only one of these fields must be non-empty"),
    ],
)
def test_config_errors(config: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("acl", config)
    assert text in caught.value.to_fields()["config"]


def test_defaults() -> None:
    assert validate_plugin_config("acl", {"allow": ["a"]}) == {
        "allow": ["a"],
        "deny": None,
        "hide_groups_header": False,
        "always_use_authenticated_groups": False,
    }


def test_allow_list() -> None:
    ctx, res = run({"allow": ["admin"]}, consumer=ADMIN, credential=CRED)
    assert res.exit is None
    assert ctx.upstream_headers()["x-consumer-groups"] == ["admin, staff"]
    _, res = run({"allow": ["admin"]}, consumer=STAFF, credential=CRED)
    assert res.status == 403
    assert message(res) == "You cannot consume this service"


def test_deny_list() -> None:
    _, res = run({"deny": ["admin"]}, consumer=ADMIN, credential=CRED)
    assert res.status == 403
    ctx, res = run({"deny": ["admin"]}, consumer=STAFF, credential=CRED)
    assert res.exit is None
    assert ctx.upstream_headers()["x-consumer-groups"] == ["staff"]
    ctx, res = run({"deny": ["admin"]}, consumer=LONER, credential=CRED)
    assert res.exit is None  # no groups: not denied


def test_consumer_without_groups_on_allow_list() -> None:
    _, res = run({"allow": ["staff"]}, consumer=LONER, credential=CRED)
    assert res.status == 403
    _, res = run({"allow": ["staff"]}, consumer=LONER)  # anonymous consumer
    assert res.status == 401
    assert message(res) == "Unauthorized"


def test_nobody_authenticated_is_401() -> None:
    _, res = run({"allow": ["staff"]})
    assert res.status == 401
    assert message(res) == "Unauthorized"


def test_hide_groups_header() -> None:
    ctx, res = run(
        {"allow": ["staff"], "hide_groups_header": True}, consumer=STAFF, credential=CRED
    )
    assert res.exit is None
    assert "x-consumer-groups" not in ctx.upstream_headers()


def test_authenticated_groups() -> None:
    h = make_handler("acl", {"allow": ["ldap-admins"]}, consumers=CONSUMERS)
    ctx = FakeContext()
    ctx.shared["authenticated_groups"] = ["ldap-admins", "x"]
    assert run_phases(h, ctx).exit is None
    assert ctx.upstream_headers()["x-authenticated-groups"] == ["ldap-admins, x"]
    # a real credential's consumer groups win unless always_use_authenticated_groups
    ctx = FakeContext(consumer=STAFF, credential=CRED)
    ctx.shared["authenticated_groups"] = ["ldap-admins"]
    assert run_phases(h, ctx).status == 403
    always = make_handler(
        "acl",
        {"allow": ["ldap-admins"], "always_use_authenticated_groups": True},
        consumers=CONSUMERS,
    )
    ctx = FakeContext(consumer=STAFF, credential=CRED)
    ctx.shared["authenticated_groups"] = ["ldap-admins"]
    assert run_phases(always, ctx).exit is None
    ctx = FakeContext(consumer=STAFF)  # anonymous: authenticated groups are used
    ctx.shared["authenticated_groups"] = ["ldap-admins"]
    assert run_phases(h, ctx).exit is None


def test_garbage_authenticated_groups_are_ignored() -> None:
    h = make_handler("acl", {"allow": ["a"]}, consumers=CONSUMERS)
    ctx = FakeContext()
    ctx.shared["authenticated_groups"] = "a"  # not a list
    assert run_phases(h, ctx).status == 401


def test_after_key_auth_in_one_chain() -> None:
    auth = make_handler("key-auth", {}, consumers=CONSUMERS)
    acl = make_handler("acl", {"allow": ["admin"]}, consumers=CONSUMERS)
    ctx = FakeContext(headers={"apikey": "adm"})
    assert run_phases([acl, auth], ctx).exit is None  # ordered by PRIORITY: key-auth first
    ctx = FakeContext(headers={"apikey": "lon"})
    assert run_phases([acl, auth], ctx).status == 403


def test_decisions_are_cached_per_consumer() -> None:
    h = make_handler("acl", {"allow": ["staff"]}, consumers=CONSUMERS)
    for _ in range(3):
        run_phases(h, FakeContext(consumer=ADMIN, credential=CRED))
    assert h.decisions == {"c-admin": "admin, staff"}  # type: ignore[attr-defined]


def test_group_names_that_cannot_be_sent_are_not_sent() -> None:
    odd = Consumer(id="c-odd", username="odd", credentials=groups("ok", "bad\r\nX-Admin: 1"))
    h = make_handler("acl", {"allow": ["ok"]}, consumers=[odd])
    ctx = FakeContext(consumer=odd, credential=CRED)
    assert run_phases(h, ctx).exit is None
    assert "x-consumer-groups" not in ctx.upstream_headers()
