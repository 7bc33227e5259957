"""Plugin configs holding vault references pass the Admin API's schema check for those fields
(they are validated once resolved, at compile time); other violations are still reported."""

from __future__ import annotations

import pytest

from meshgate.controlplane.admin_api.documents import check_plugin_name
from meshgate.controlplane.admin_api.errors import AdminError


def test_a_reference_in_a_formatted_field_is_accepted() -> None:
    check_plugin_name({"name": "key-auth", "config": {"key_names": ["{vault://env/key-name}"]}})
    check_plugin_name(
        {"name": "request-transformer", "config": {"add": {"headers": ["{vault://env/hdr}"]}}}
    )


def test_other_violations_are_still_reported_with_their_paths() -> None:
    with pytest.raises(AdminError) as caught:
        check_plugin_name(
            {
                "name": "key-auth",
                "config": {"key_names": ["{vault://env/k}"], "hide_credentials": 3},
            }
        )
    fields = caught.value.body["fields"]
    assert "hide_credentials" in fields["config"]
    assert "key_names" not in fields["config"]
