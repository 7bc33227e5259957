"""``POST /config`` answers in Kong 3.x's shapes: 201 with the loaded entities keyed by type
and id; 400 code 14 with nested ``fields`` (``"@entity"`` lists, nulls for fine array items)
and, with ``?flatten_errors=1``, ``flattened_errors`` (one item per entity in error)."""

from __future__ import annotations

from typing import Any

import pytest
from admin_kit import AdminClient

SERVICE_ID = "4e3cb785-a8d0-5866-aa05-117f7c64f24d"
CONSUMER_ID = "a73dc9a7-93df-584d-97c0-7f41a1bbce3d"
ROUTE_ERROR = (
    "must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'"
)
PATH_ERROR = "should start with: / (fixed path) or ~/ (regex path)"
NOT_ENABLED = "plugin 'i-dont-exist' not enabled; add it to the 'plugins' configuration property"

INVALID: dict[str, Any] = {
    "_format_version": "3.0",
    "abnormal_extra_field": 123,
    "consumers": [
        {"username": "fine", "tags": ["consumer-01"]},
        {"username": "bobby", "not_allowed": True, "tags": ["consumer-02"]},
        {
            "id": CONSUMER_ID,
            "username": "creds",
            "basicauth_credentials": [
                {"username": "u", "password": "p", "extra_field": "NO!", "tags": ["basic-01"]}
            ],
        },
    ],
    "services": [
        {
            "name": "nope-svc",
            "host": "localhost",
            "routes": [
                {"name": "valid.route", "paths": ["/a"]},
                {"name": "nope.route", "protocols": ["tcp"], "tags": ["route-02"]},
            ],
        },
        {
            "id": SERVICE_ID,
            "name": "okay",
            "url": "http://localhost:1234",
            "routes": [
                {
                    "name": "r",
                    "paths": ["/x", "bad"],
                    "tags": ["route-03"],
                    "plugins": [{"name": "http-log", "config": {"not_endpoint": "anything"}}],
                }
            ],
        },
    ],
    "plugins": [{"name": "i-dont-exist", "config": {}}],
}


def _invalid(admin: AdminClient, query: str) -> dict[str, Any]:
    admin.ok("POST", "/services", 201, json={"name": "keep", "host": "keep.internal"})
    response = admin.post(f"/config{query}", json=INVALID)
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == 14
    assert body["name"] == "invalid declarative configuration"
    assert admin.ok("GET", "/services/keep")["host"] == "keep.internal"  # nothing applied
    return body


def test_success_lists_the_loaded_entities_by_type_and_id(admin: AdminClient) -> None:
    document = {
        "_format_version": "3.0",
        "services": [{"id": SERVICE_ID, "name": "s", "url": "http://s.internal:8080",
                      "routes": [{"name": "r", "paths": ["/r"]}]}],
        "consumers": [{"id": CONSUMER_ID, "username": "ann",
                       "keyauth_credentials": [{"key": "ann-key"}]}],
    }  # fmt: skip
    loaded = admin.ok("POST", "/config", 201, json=document)
    assert sorted(loaded) == ["consumers", "keyauth_credentials", "routes", "services"]
    assert loaded["services"] == {SERVICE_ID: admin.ok("GET", f"/services/{SERVICE_ID}")}
    (route_id,) = loaded["routes"]
    assert loaded["routes"][route_id]["service"] == {"id": SERVICE_ID}
    assert loaded["routes"][route_id] == admin.ok("GET", "/routes/r")
    (credential,) = loaded["keyauth_credentials"].values()
    assert credential["key"] == "ann-key"
    assert credential["consumer"] == {"id": CONSUMER_ID}


def test_errors_nest_like_the_document(admin: AdminClient) -> None:
    body = _invalid(admin, "")
    fields = body["fields"]
    assert "flattened_errors" not in body
    assert fields["abnormal_extra_field"] == "unknown field"
    assert fields["consumers"][0] is None
    assert fields["consumers"][1] == {"not_allowed": "unknown field"}
    assert fields["consumers"][2] == {"basicauth_credentials": [{"extra_field": "unknown field"}]}
    first, second = fields["services"]
    assert first == {"routes": [None, {"@entity": [ROUTE_ERROR]}]}
    route = second["routes"][0]
    assert route["paths"] == [None, PATH_ERROR]
    assert set(route["plugins"][0]["config"]) == {"http_endpoint", "not_endpoint"}
    assert fields["plugins"] == [{"name": NOT_ENABLED}]
    assert body["message"].startswith(
        'declarative config is invalid: {abnormal_extra_field="unknown field",consumers={[2]='
    )


@pytest.mark.parametrize("flag", ["1", "true", "on", "YES"])
def test_flattened_errors_name_each_entity(admin: AdminClient, flag: str) -> None:
    body = _invalid(admin, f"?flatten_errors={flag}")
    # what belongs to no entity stays in fields, and the message only tells that
    assert body["fields"] == {"abnormal_extra_field": "unknown field"}
    assert (
        body["message"] == 'declarative config is invalid: {abnormal_extra_field="unknown field"}'
    )
    by_tag_or_name = {
        (item.get("entity_tags") or [item.get("entity_name")])[0]: item
        for item in body["flattened_errors"]
    }
    assert len(by_tag_or_name) == len(body["flattened_errors"]) == 6

    consumer = by_tag_or_name["consumer-02"]
    assert consumer == {
        "entity_tags": ["consumer-02"],
        "entity_type": "consumer",
        "entity": {"username": "bobby", "not_allowed": True, "tags": ["consumer-02"]},
        "errors": [{"type": "field", "field": "not_allowed", "message": "unknown field"}],
    }
    credential = by_tag_or_name["basic-01"]
    assert credential["entity_type"] == "basicauth_credential"
    assert credential["entity"]["consumer"] == {"id": CONSUMER_ID}  # the parent's key added
    assert credential["errors"] == [
        {"type": "field", "field": "extra_field", "message": "unknown field"}
    ]
    tcp_route = by_tag_or_name["route-02"]
    assert tcp_route["entity_name"] == "nope.route"
    assert "service" not in tcp_route["entity"]  # the parent has no id to point at
    assert tcp_route["errors"] == [{"type": "entity", "message": ROUTE_ERROR}]
    route = by_tag_or_name["route-03"]
    assert route["entity_type"] == "route"
    assert "plugins" not in route["entity"]  # nested entities are listed on their own
    assert route["entity"]["service"] == {"id": SERVICE_ID}
    assert route["errors"] == [{"type": "field", "field": "paths.2", "message": PATH_ERROR}]
    plugin = by_tag_or_name["http-log"]
    assert plugin["entity_type"] == "plugin"
    assert {e["field"] for e in plugin["errors"]} == {"config.http_endpoint", "config.not_endpoint"}
    assert by_tag_or_name["i-dont-exist"]["errors"] == [
        {"type": "field", "field": "name", "message": NOT_ENABLED}
    ]
    assert all("entity_id" not in item for item in body["flattened_errors"])


def test_flattened_errors_carry_valid_ids_only(admin: AdminClient) -> None:
    document = {
        "_format_version": "3.0",
        "services": [
            {"id": SERVICE_ID, "name": "a", "host": "a.internal", "port": 70000},
            {"id": "not-a-uuid", "name": "b", "host": "b.internal", "tags": ["x", 5]},
        ],
    }
    response = admin.post("/config?flatten_errors=1", json=document)
    assert response.status_code == 400
    first, second = response.json()["flattened_errors"]
    assert first["entity_id"] == SERVICE_ID
    assert first["entity_name"] == "a"
    assert [e["field"] for e in first["errors"]] == ["port"]
    assert "entity_id" not in second
    assert "entity_tags" not in second
    assert {e["field"] for e in second["errors"]} >= {"tags.2"}  # positions count from 1


def test_an_unparsable_file_is_reported_under_error(admin: AdminClient) -> None:
    response = admin.post(
        "/config", content=b"services: [", headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 14
    assert list(body["fields"]) == ["error"]
    assert body["fields"]["error"].startswith("failed parsing declarative configuration: ")
    empty = admin.post("/config", content=b"", headers={"content-type": "application/yaml"})
    assert empty.json() == {"message": "expected a declarative configuration"}
