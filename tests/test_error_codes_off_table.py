"""A plugin's error with a code or status of its own: the log and the hook see the caller's pair.

API.md section 7: a call's ``dataSource.call.error`` line carries the code and status the caller
got (section 3's table), and ``datasource_call_finished`` gets that code too. The plugin's own
code only reaches its authors, in the one ``plugin.bad_error`` line of its class.
"""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields, validates_schema

from lowcode_runtime import Call, DataSourceType, Result, errors, hookimpl
from tests.conftest import AUTH

EXECUTE = "/v1/projects/p/datasources/execute"


def off_table(
    base: type[errors.RuntimeBackendError], **own: Any
) -> type[errors.RuntimeBackendError]:
    """A fresh plugin class of ``base`` (its off-table line is logged once a class)."""
    return type(f"Own{base.__name__}", (base,), dict(own))


class Definition(Schema):
    """A definition whose own check raises ``error`` when it says ``fail``."""

    fail = fields.Boolean(load_default=False)

    def __init__(
        self, error: errors.RuntimeBackendError | None = None, **kw: Any
    ) -> None:
        super().__init__(
            **kw
        )  # the OpenAPI document builds one of its own, with no error
        self.error = error

    @validates_schema
    def refuse(self, data: dict[str, Any], **_: Any) -> None:
        if data["fail"] and self.error is not None:
            raise self.error


class NoParams(Schema):
    pass


class Raiser:
    """The type ``raiser``: its handler, or its definition's check, raises ``error``."""

    def __init__(self, error: errors.RuntimeBackendError) -> None:
        self.error = error
        self.finished: list[tuple[str, str | None]] = []

    @hookimpl
    def register_datasource_types(self) -> list[DataSourceType]:
        return [
            DataSourceType(
                name="raiser",
                definition_schema=Definition(self.error),
                operations={"raise": NoParams(), "succeed": NoParams()},
                handler=self.handle,
            )
        ]

    async def handle(self, call: Call) -> Result:
        if call.operation == "succeed":
            return Result({"ok": True})
        raise self.error

    @hookimpl
    def datasource_call_finished(self, call, outcome, error_code, duration_ms) -> None:
        self.finished.append((outcome, error_code))


async def call(
    client, operation: str = "raise", fail_definition: bool = False
) -> tuple[int, dict[str, Any]]:
    body = {
        "dataSource": {"type": "raiser", "name": "r", "fail": fail_definition},
        "operation": operation,
    }
    response = await client.post(EXECUTE, json=body, headers=AUTH)
    return response.status, await response.json()


CASES = [
    # (base, the plugin's own attributes, the status and code the caller gets)
    (errors.NotFound, {"code": "MINE", "status": 499}, 404, "NOT_FOUND"),
    (errors.NotFound, {"code": "MINE"}, 404, "NOT_FOUND"),
    (errors.Conflict, {"status": 418}, 409, "CONFLICT"),
    (errors.RateLimited, {"code": "SLOW_DOWN", "status": 420}, 429, "RATE_LIMITED"),
    (errors.RuntimeBackendError, {"code": "OWN", "status": 418}, 500, "INTERNAL"),
]


@pytest.mark.parametrize("base,own,status,code", CASES)
async def test_the_call_log_line_carries_the_code_and_status_the_caller_got(
    make_client, logs, base, own, status, code
):
    cls = off_table(base, **own)
    raiser = Raiser(cls("my own failure"))
    client = await make_client(
        extra_plugins=(("raiser", raiser),), load_entry_points=False
    )

    for _ in range(2):
        got_status, answer = await call(client)
        assert (got_status, answer["error"]["code"]) == (status, code)

    lines = logs.events("dataSource.call.error")
    assert [(line["httpStatus"], line["errorCode"]) for line in lines] == [
        (status, code),
        (status, code),
    ]
    assert all(f"failed: {code}: my own failure" in line["message"] for line in lines)

    # The plugin's authors are still told, once for the class, with its own code and status.
    [warned] = logs.events("plugin.bad_error")
    assert "(dataSource type 'raiser')" in warned["message"]
    assert cls.__name__ in warned["message"]
    assert f"with code {cls.code!r} and status {cls.status}" in warned["message"]
    assert f"answered as {code} {status}" in warned["message"]


@pytest.mark.parametrize("base,own,status,code", CASES)
async def test_the_finished_hook_gets_the_code_the_caller_got(
    make_client, base, own, status, code
):
    raiser = Raiser(off_table(base, **own)("my own failure"))
    client = await make_client(
        extra_plugins=(("raiser", raiser),), load_entry_points=False
    )

    got_status, answer = await call(client)

    assert (got_status, answer["error"]["code"]) == (status, code)
    assert raiser.finished == [("error", code)]


async def test_an_off_table_error_raised_while_validating_is_logged_as_answered(
    make_client, logs
):
    raiser = Raiser(off_table(errors.NotFound, code="MINE", status=499)("no such"))
    client = await make_client(
        extra_plugins=(("raiser", raiser),), load_entry_points=False
    )

    got_status, answer = await call(client, fail_definition=True)

    assert (got_status, answer["error"]["code"]) == (404, "NOT_FOUND")
    [line] = logs.events("dataSource.call.error")
    assert (line["httpStatus"], line["errorCode"]) == (404, "NOT_FOUND")
    assert raiser.finished == []  # refused before its handler: no call-life-cycle hook
    assert len(logs.events("plugin.bad_error")) == 1


async def test_a_contract_error_and_a_success_are_logged_as_before(make_client, logs):
    raiser = Raiser(errors.Conflict("taken"))
    client = await make_client(
        extra_plugins=(("raiser", raiser),), load_entry_points=False
    )

    assert (await call(client))[0] == 409
    assert (await call(client, "succeed"))[0] == 200

    [failed] = logs.events("dataSource.call.error")
    assert (failed["httpStatus"], failed["errorCode"]) == (409, "CONFLICT")
    [succeeded] = logs.events("dataSource.call.success")
    assert succeeded["httpStatus"] == 200 and "errorCode" not in succeeded
    assert raiser.finished == [("error", "CONFLICT"), ("success", None)]
    assert logs.events("plugin.bad_error") == []
