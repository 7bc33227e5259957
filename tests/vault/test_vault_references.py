"""``{vault://env/...}`` references: parsing, Kong's env naming, JSON keys, errors with paths,
and the compiler hook (the snapshot holds the secret, the config keeps the reference)."""

from __future__ import annotations

import pytest

from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.compiler.vault import (
    ENV_PREFIX_SETTING,
    VaultError,
    env_variable,
    is_reference,
    parse_reference,
    resolve_reference,
    resolve_references,
)
from meshgate.errors import ConfigError
from meshgate.resources.declarative import load_dict


def test_only_whole_strings_are_references() -> None:
    assert is_reference("{vault://env/x}")
    assert not is_reference("prefix {vault://env/x}")
    assert not is_reference("{vault://env/x} ")
    assert not is_reference(42)


def test_parse_reference_parts() -> None:
    ref = parse_reference("{vault://env/cert/key?prefix=ssl_#2}")
    assert (ref.vault, ref.resource, ref.key, dict(ref.config), ref.version) == (
        "env",
        "cert",
        "key",
        {"prefix": "ssl_"},
        2,
    )
    assert parse_reference("{vault://env/a/b/c}").resource == "a/b"
    assert parse_reference("{vault://env/a/}").key is None
    for bad in ("{vault://env/}", "{vault:///x}", "{vault://env/x#v1}"):
        with pytest.raises(VaultError):
            parse_reference(bad)


def test_env_naming_follows_kong() -> None:
    assert env_variable(parse_reference("{vault://env/my-token}")) == "MY_TOKEN"
    assert env_variable(parse_reference("{vault://env/tok?prefix=app_}")) == "APP_TOK"
    assert env_variable(parse_reference("{vault://env/tok}"), "svc_") == "SVC_TOK"
    assert env_variable(parse_reference("{vault://env/tok#2}")) == "TOK_PREVIOUS"


def test_resolve_plain_prefixed_and_json_key() -> None:
    env = {
        "MY_TOKEN": "s3cret",
        "APP_TOK": "from-prefix",
        "DB": '{"password": "pw", "port": 5432}',
        ENV_PREFIX_SETTING: "",
    }
    assert resolve_reference("{vault://env/my-token}", env) == "s3cret"
    assert resolve_reference("{vault://env/tok?prefix=app_}", env) == "from-prefix"
    assert resolve_reference("{vault://env/db/password}", env) == "pw"
    assert resolve_reference("{vault://env/db/port}", env) == "5432"
    assert (
        resolve_reference("{vault://env/tok}", {"APP_TOK": "x", ENV_PREFIX_SETTING: "app_"}) == "x"
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("{vault://env/missing}", "environment variable MISSING is not set"),
        ("{vault://aws/x}", "vault 'aws' is not configured"),
        ("{vault://env/x?region=eu}", "unknown env vault config: region"),
        ("{vault://env/my-token/key}", "MY_TOKEN does not hold a JSON object"),
        ("{vault://env/db/user}", "DB has no key 'user'"),
    ],
)
def test_unresolvable_references_say_why(reference: str, message: str) -> None:
    env = {"MY_TOKEN": "plain", "DB": '{"password": "pw"}'}
    with pytest.raises(VaultError, match=message):
        resolve_reference(reference, env)


def test_resolve_references_walks_config_and_reports_every_path() -> None:
    config = {
        "realm": "{vault://env/realm}",
        "names": ["a", "{vault://env/name}"],
        "nested": {"deep": ["{vault://env/gone}", {"k": "{vault://env/also-gone}"}]},
        "count": 3,
    }
    # every problem is reported, each at its path
    with pytest.raises(ConfigError) as caught:
        resolve_references(config, "plugins.p.config", {"REALM": "r"})
    paths = sorted(v.path for v in caught.value.violations)
    assert paths == [
        "plugins.p.config.names[1]",
        "plugins.p.config.nested.deep[0]",
        "plugins.p.config.nested.deep[1].k",
    ]
    env = {"REALM": "r", "NAME": "n", "GONE": "g", "ALSO_GONE": "ag"}
    assert resolve_references(config, "p", env) == {
        "realm": "r",
        "names": ["a", "n"],
        "nested": {"deep": ["g", {"k": "ag"}]},
        "count": 3,
    }
    assert config["realm"] == "{vault://env/realm}"  # the input is not modified
    plain = {"a": ["b"]}
    assert resolve_references(plain, "p", {}) is plain


DOC = {
    "_format_version": "3.0",
    "services": [{"name": "s", "url": "http://127.0.0.1:9"}],
    "plugins": [
        {
            "name": "key-auth",
            "instance_name": "vaulted",
            "config": {"realm": "{vault://env/mg-vault-unit-realm}"},
        }
    ],
}


def test_compiler_resolves_plugin_configs_and_keeps_the_entity_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MG_VAULT_UNIT_REALM", "the-realm")
    config = load_dict(DOC)
    snap = compile_gateway(config, NodeSettings())
    assert snap.plugins[0].config["realm"] == "the-realm"
    assert config.plugins[0].config["realm"] == "{vault://env/mg-vault-unit-realm}"


def test_compiler_refuses_an_unresolvable_reference_with_the_field_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MG_VAULT_UNIT_REALM", raising=False)
    with pytest.raises(ConfigError) as caught:
        compile_gateway(load_dict(DOC), NodeSettings())
    (violation,) = caught.value.violations
    assert violation.path == "plugins.vaulted.config.realm"
    assert "MG_VAULT_UNIT_REALM is not set" in violation.message
