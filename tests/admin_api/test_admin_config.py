"""``/config`` export and atomic replace, and ``config_from_entities`` over what the API stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from admin_kit import AdminClient, MakeAdmin

from meshgate.controlplane.admin_api import apply_declarative
from meshgate.errors import ConfigError
from meshgate.resources import load_file
from meshgate.resources.from_entities import config_from_entities, entities_from_config

REALISTIC = Path(__file__).parents[1] / "resources" / "data" / "kong-realistic.yaml"

SMALL = """
_format_version: "3.0"
services:
- name: svc
  url: http://svc.internal:8080
  routes:
  - name: r
    paths: [/a]
    plugins:
    - name: cors
consumers:
- username: alice
  keyauth_credentials:
  - key: alice-key
  basicauth_credentials:
  - username: alice
    password: secret
upstreams:
- name: up.internal
  targets:
  - target: 10.0.0.1:80
"""


def _dump(admin: AdminClient) -> list[tuple[str, dict[str, object]]]:
    dump = admin.loop.run(admin.store.dump_all())
    return [(entity.type, entity.doc) for entity in dump.entities]


def test_post_config_replaces_everything(admin: AdminClient) -> None:
    admin.ok("POST", "/services", 201, json={"name": "old", "host": "old.internal"})
    result = admin.ok(
        "POST", "/config", 201, content=SMALL, headers={"content-type": "application/yaml"}
    )
    # Kong's answer: the loaded entities keyed by entity type, then by id
    assert set(result) == {
        "services", "routes", "plugins", "consumers", "keyauth_credentials",
        "basicauth_credentials", "upstreams", "targets",
    }  # fmt: skip
    (service,) = result["services"].values()
    assert result["services"] == {service["id"]: service}
    assert service["name"] == "svc"
    assert admin.get("/services/old").status_code == 404
    route = admin.ok("GET", "/routes/r")
    assert route["service"] == {"id": admin.ok("GET", "/services/svc")["id"]}
    consumer = admin.ok("GET", "/consumers/alice")
    basic = admin.ok("GET", "/basic-auths/alice")
    assert basic["password"] == hashlib.sha1(("secret" + consumer["id"]).encode()).hexdigest()
    assert admin.ok("GET", "/key-auths/alice-key")["consumer"] == {"id": consumer["id"]}
    assert admin.ok("GET", "/routes/r/plugins")["data"][0]["name"] == "cors"
    assert admin.ok("GET", "/upstreams/up.internal/targets/10.0.0.1:80")["weight"] == 100
    assert len(admin.changes) == 2


def test_config_accepts_json_and_kong_forms(admin: AdminClient) -> None:
    document = yaml.safe_load(SMALL)
    admin.ok("POST", "/config", 201, json=document)
    admin.ok("POST", "/config", 201, json={"config": SMALL})
    admin.ok("POST", "/config", 201, files={"config": ("kong.yml", SMALL.encode())})
    admin.ok("POST", "/config", 201, data={"config": SMALL})
    assert len(admin.ok("GET", "/services")["data"]) == 1


def test_check_hash_skips_identical_config(admin: AdminClient) -> None:
    admin.ok("POST", "/config", 201, json={"config": SMALL})
    revision = admin.ok("GET", "/status")["revision"]
    again = admin.post("/config?check_hash=1", json={"config": SMALL})
    assert again.status_code == 304
    assert admin.ok("GET", "/status")["revision"] == revision
    # Kong compares check_hash to "1" only: anything else loads the file again
    admin.ok("POST", "/config?check_hash=true", 201, json={"config": SMALL})
    changed = SMALL.replace("paths: [/a]", "paths: [/b]")
    admin.ok("POST", "/config?check_hash=1", 201, json={"config": changed})


def test_invalid_config_is_rejected_whole(admin: AdminClient) -> None:
    admin.ok("POST", "/services", 201, json={"name": "keep", "host": "keep.internal"})
    bad = SMALL.replace("paths: [/a]", "paths: [nope]").replace("url: http://", "url: bogus")
    response = admin.post("/config", json={"config": bad})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 14
    assert body["name"] == "invalid declarative configuration"
    assert body["fields"]["services"][0]["routes"][0]["paths"] == [
        "should start with: / (fixed path) or ~/ (regex path)"
    ]
    assert "url" in body["fields"]["services"][0]
    assert body["message"].startswith("declarative config is invalid: {services={{")
    assert "flattened_errors" not in body
    assert admin.ok("GET", "/services/keep")["host"] == "keep.internal"


@pytest.mark.parametrize(
    "content", [b"", b"services: [", b"- just\n- a list\n", b"_format_version: '9.9'\n"]
)
def test_malformed_config_is_400(admin: AdminClient, content: bytes) -> None:
    response = admin.post("/config", content=content, headers={"content-type": "application/yaml"})
    assert response.status_code == 400, response.text


def test_get_config_round_trips(admin: AdminClient) -> None:
    admin.ok(
        "POST",
        "/config",
        201,
        content=REALISTIC.read_bytes(),
        headers={"content-type": "text/yaml"},
    )
    before = _dump(admin)
    exported = admin.ok("GET", "/config")["config"]
    assert yaml.safe_load(exported)["_transform"] is False  # secrets are stored hashed
    admin.ok("POST", "/services", 201, json={"name": "extra", "host": "extra.internal"})
    admin.ok(
        "POST", "/config", 201, content=exported.encode(), headers={"content-type": "text/yaml"}
    )
    assert _dump(admin) == before
    as_json = admin.ok("GET", "/config?format=json")
    assert as_json["_format_version"] == "3.0"
    assert admin.get("/config?format=yaml").headers["content-type"] == "application/yaml"


def test_config_from_store_equals_the_loaded_file(admin: AdminClient) -> None:
    loaded = load_file(REALISTIC)
    admin.ok(
        "POST",
        "/config",
        201,
        content=REALISTIC.read_bytes(),
        headers={"content-type": "text/yaml"},
    )
    from_store = config_from_entities(_dump(admin))
    assert [s.id for s in from_store.services] == [s.id for s in loaded.services]
    assert from_store.routes == loaded.routes
    assert from_store.plugins == loaded.plugins
    assert from_store.targets == loaded.targets
    assert entities_from_config(config_from_entities(entities_from_config(loaded))) == (
        entities_from_config(loaded)
    )


def test_config_from_entities_locates_violations_by_id(admin: AdminClient) -> None:
    admin.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    route = admin.ok("POST", "/services/svc/routes", 201, json={"paths": ["/a"]})
    rows = _dump(admin)
    broken = [(kind, {**doc, "paths": ["bad"]} if kind == "routes" else doc) for kind, doc in rows]
    with pytest.raises(ConfigError) as caught:
        config_from_entities(broken)
    assert [v.path for v in caught.value.violations] == [f"routes[{route['id']}].paths[0]"]
    config = config_from_entities([*rows, ("mesh_policies", {"id": "x"})])
    assert config.routes[0].service == admin.ok("GET", "/services/svc")["id"]


def test_apply_declarative_feeds_a_read_only_node(make_admin: MakeAdmin) -> None:
    admin = make_admin(read_only_reason="running from kong.yml")
    revision = admin.loop.run(apply_declarative(admin.store, yaml.safe_load(SMALL)))
    assert revision > 0
    assert admin.ok("GET", "/services/svc")["port"] == 8080
    assert admin.ok("GET", "/")["configuration"]["database"] == "off"
    assert admin.post("/config", json={"config": SMALL}).status_code == 405
    with pytest.raises(ConfigError):
        admin.loop.run(apply_declarative(admin.store, {"_format_version": "3.0", "services": [{}]}))
