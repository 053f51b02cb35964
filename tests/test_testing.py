"""The fixtures lowcode-runtime publishes for plugin tests, used as a plugin's suite uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lowcode_runtime.testing import SETTINGS_FIELDS
from tests.support import EchoPlugin

ROOT = Path(__file__).resolve().parent.parent
ECHO = {"type": "echo", "name": "e"}


async def test_an_answer_carries_the_response_headers(lowcode_client):
    client = await lowcode_client(extra_plugins=(("echo", EchoPlugin()),))

    answer = await client.execute(
        ECHO, "echo", {"value": 1}, headers={"x-trace-id": "trace-abc-123"}
    )

    assert answer.data["value"] == 1
    assert answer.headers["X-Trace-Id"] == "trace-abc-123"
    assert answer.headers["x-request-id"] == answer.body["meta"]["requestId"]


async def test_an_extra_plugin_is_reported_under_the_name_it_was_given(lowcode_client):
    client = await lowcode_client(extra_plugins=(("my-echo", EchoPlugin()),))

    listed = (await client.get("/v1/plugins")).data
    echo = next(t for t in listed if t["type"] == "echo")

    assert echo["plugin"] == {"name": "my-echo", "version": "unknown"}


def test_an_unknown_override_names_the_settings_fields(lowcode_settings):
    with pytest.raises(
        TypeError, match="unknown Settings field.* egress_alow;"
    ) as raised:
        lowcode_settings(egress_alow=("127.0.0.1",))

    assert "egress_allow" in str(raised.value)
    assert lowcode_settings(egress_allow=("127.0.0.1",)).egress_allow == ("127.0.0.1",)
    assert {"database_url", "secrets_file", "request_timeout_ms"} <= set(
        SETTINGS_FIELDS
    )


async def test_ready_fails_on_the_db_check_unless_a_database_is_given(
    lowcode_client, database_url
):
    """The built-in db plugin checks its database; the fixture starts none of its own."""
    without = await (await lowcode_client()).get("/ready")
    assert without.status == 503
    assert without.error["code"] == "DB_UNAVAILABLE"
    assert [c["name"] for c in without.error["details"]["checks"]] == ["db"]

    with_db = await (await lowcode_client(database_url=database_url)).get("/ready")
    assert with_db.status == 200
    assert with_db.body["status"] == "ready"


def test_the_guide_lists_every_settings_field():
    guide = ROOT.joinpath("docs", "plugins.md").read_text()
    missing = [name for name in SETTINGS_FIELDS if f"`{name}`" not in guide]
    assert not missing, f"docs/plugins.md does not list the Settings fields {missing}"
