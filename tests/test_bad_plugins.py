"""A plugin's faults stay its own: the service answers in the envelope and names the culprit.

The plugin here is a real distribution (entry-point metadata on ``sys.path``), so the error can
name it as a third party's would be named.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest

from tests.conftest import AUTH
from tests.support import write_distribution

BAD_PLUGIN = """
import asyncio
import datetime
import math

from marshmallow import Schema, fields
from lowcode_runtime import DataSourceType, Result, errors, hookimpl, register_secret


class Nothing(Schema):
    pass


class Loop:
    pass


ESCAPES = {
    "interrupt": KeyboardInterrupt,
    "exit": SystemExit,
    "cancel": asyncio.CancelledError,
    "generator_exit": GeneratorExit,
}


def raised():
    return {
        "error_set": errors.NotFound("no such row", {1, 2}),
        "error_datetime": errors.Conflict("taken", {"at": datetime.datetime(2024, 1, 1)}),
        "error_object": errors.UpstreamStatus("upstream said no", [Loop()]),
        "error_bytes": errors.NotFound(b"no such row"),
        "error_number": errors.Conflict(409),
        "error_busy": errors.RateLimited("the upstream is busy"),
        "error_busy_for": errors.RateLimited("busy", {"upstream": "x"}, retry_after=2.2),
        "error_secret": errors.NotFound(
            "token is s3cr3t-of-the-plugin",
            {"hint": "s3cr3t-of-the-plugin", "sent": ["Authorization: Bearer abc.def"],
             "by_token": {"s3cr3t-of-the-plugin": 1}},
        ),
    }


def results():
    loop = {"a": 1}
    loop["self"] = loop
    return {
        "set": Result({"tags": {"a", "b"}}),
        "datetime": Result({"rows": [{"at": datetime.datetime(2024, 1, 1)}]}),
        "object": Result(Loop()),
        "nan": Result({"ratio": math.nan}),
        "loop": Result(loop),
        "meta": Result(1, meta={"when": datetime.date(2024, 1, 1)}),
        "deep": Result(deep(5000)),
        "big_int": Result({"n": 10 ** 5000}),
        "surrogate": Result({"rows": ["ok", "half \\ud800 a pair"]}),
        "dict": {"rows": []},
        "none": None,
        "str": "rows",
        "meta_list": Result(1, meta=["page"]),
    }


def deep(levels):
    value = top = {}
    for _ in range(levels):
        value["a"] = {}
        value = value["a"]
    return top


async def handle(call):
    if call.operation == "raise":
        raise KeyError("secret-looking text from the plugin")
    if call.operation.startswith("error_"):
        register_secret("s3cr3t-of-the-plugin")
        raise raised()[call.operation]
    if call.operation in ESCAPES:
        raise ESCAPES[call.operation]("secret-looking text from the plugin")
    if call.operation == "hang":
        await asyncio.sleep(30)
    if call.operation == "swallow":
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(5)
    if call.operation == "swallow_forever":
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                pass
    return results()[call.operation]


@hookimpl
def register_datasource_types():
    operations = ["raise", "hang", "swallow", "swallow_forever", *ESCAPES, *raised(),
                  *results()]
    return [DataSourceType(name=name, definition_schema=Nothing(),
                           operations={name: Nothing() for name in operations},
                           handler=handle, cancels_promptly=prompt)
            for name, prompt in (("bad", False), ("bad_prompt", True))]
"""

EXECUTE = "/v1/projects/p/datasources/execute"
TRACE = "trace-of-a-bad-call"


@pytest.fixture
async def client(tmp_path, monkeypatch, make_client):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_distribution(tmp_path, "lowcode-bad", "bad_plugin", BAD_PLUGIN, "bad")
    yield await make_client(request_timeout_ms=300)
    sys.modules.pop("bad_plugin", None)


async def run(client, operation, type_name="bad"):
    response = await client.post(
        EXECUTE,
        json={"dataSource": {"type": type_name, "name": "b"}, "operation": operation},
        headers={**AUTH, "x-trace-id": TRACE},
    )
    assert response.headers["x-trace-id"] == TRACE
    return response.status, await response.json()


@pytest.mark.parametrize(
    "operation,status,message,what",
    [
        ("error_set", 404, "no such row", "details is a set"),
        ("error_datetime", 409, "taken", "details.at is a datetime"),
        ("error_object", 502, "upstream said no", "details[0] is a Loop"),
        ("error_bytes", 404, "not found", "its message is not a string"),
        (
            "error_number",
            409,
            "unique constraint violated",
            "its message is not a string",
        ),
    ],
)
async def test_an_error_that_json_cannot_hold_keeps_its_code_without_its_details(
    client, logs, operation, status, message, what
):
    answered, body = await run(client, operation)

    assert answered == status
    assert body["ok"] is False and body["meta"]["traceId"] == TRACE
    assert body["error"] == {"code": body["error"]["code"], "message": message}
    [logged] = logs.events("plugin.bad_error")
    assert logged["plugin"] == "lowcode-bad" and logged["traceId"] == TRACE
    assert what in logged["message"] and "lowcode-bad 1.2.3" in logged["message"]


async def test_rate_limited_takes_message_and_details_like_every_class(client):
    response = await client.post(
        EXECUTE,
        json={"dataSource": {"type": "bad", "name": "b"}, "operation": "error_busy"},
        headers=AUTH,
    )
    assert response.status == 429 and response.headers["retry-after"] == "5"
    assert (await response.json())["error"] == {
        "code": "RATE_LIMITED",
        "message": "the upstream is busy",
    }

    response = await client.post(
        EXECUTE,
        json={
            "dataSource": {"type": "bad", "name": "b"},
            "operation": "error_busy_for",
        },
        headers=AUTH,
    )
    assert response.status == 429 and response.headers["retry-after"] == "3"
    assert (await response.json())["error"]["details"] == {"upstream": "x"}


def test_the_former_rate_limited_signature_still_works_and_warns():
    from lowcode_runtime import errors

    with pytest.warns(DeprecationWarning, match="retry_after=seconds"):
        error = errors.RateLimited(7, "slow down")
    assert (error.retry_after, error.message, error.details) == (7, "slow down", None)
    assert errors.RateLimited().message == "too many requests: retry in 5 s"


async def test_an_error_never_carries_a_secret_to_the_caller(client):
    status, body = await run(client, "error_secret")

    assert status == 404
    assert "s3cr3t" not in json.dumps(body) and "abc.def" not in json.dumps(body)
    assert body["error"] == {
        "code": "NOT_FOUND",
        "message": "token is [REDACTED]",
        "details": {
            "hint": "[REDACTED]",
            "sent": ["Authorization: Bearer [REDACTED]"],
            "by_token": {"[REDACTED]": 1},
        },
    }


async def test_a_raising_handler_gets_internal_with_the_trace_id_and_none_of_its_text(
    client, logs
):
    status, body = await run(client, "raise")

    assert status == 500
    assert body["error"] == {"code": "INTERNAL", "message": "internal error"}
    assert body["meta"]["traceId"] == TRACE
    assert "secret-looking" not in json.dumps(body) and "KeyError" not in json.dumps(
        body
    )
    logged = [r for r in logs.records() if "exception" in r]
    assert len(logged) == 1 and logged[0]["traceId"] == TRACE
    assert "KeyError" in logged[0]["exception"]


ESCAPED = {
    "interrupt": "KeyboardInterrupt",
    "exit": "SystemExit",
    "cancel": "CancelledError",
    "generator_exit": "GeneratorExit",
}


@pytest.mark.parametrize("type_name", ["bad", "bad_prompt"])
@pytest.mark.parametrize("operation", list(ESCAPED))
async def test_a_handler_raising_a_base_exception_gets_internal_and_the_service_lives_on(
    client, logs, operation, type_name
):
    """``bad_prompt`` is awaited in the request's task (``cancels_promptly``): the same holds."""
    status, body = await run(client, operation, type_name)

    assert status == 500
    assert body["error"] == {"code": "INTERNAL", "message": "internal error"}
    assert body["meta"]["traceId"] == TRACE
    assert "secret-looking" not in json.dumps(body)
    [logged] = [r for r in logs.records() if "exception" in r]
    assert logged["traceId"] == TRACE and logged["plugin"] == "lowcode-bad"
    assert logged["message"] == (
        f"the handler of lowcode-bad 1.2.3 (dataSource type {type_name!r}) raised "
        f"{ESCAPED[operation]}"
    )

    status, body = await run(client, "set")
    assert status == 500 and "data.tags is a set" in body["error"]["message"]


@pytest.mark.parametrize("type_name", ["bad", "bad_prompt"])
async def test_a_handler_awaiting_past_the_deadline_is_cancelled(client, type_name):
    status, body = await run(client, "hang", type_name)

    assert status == 504
    assert body["error"]["code"] == "TIMEOUT"
    assert body["meta"]["durationMs"] < 5000


@pytest.mark.parametrize("operation", ["swallow", "swallow_forever"])
async def test_a_handler_swallowing_its_cancellation_gets_504_at_the_deadline(
    client, logs, operation
):
    sent = time.monotonic()
    status, body = await run(client, operation)

    assert status == 504 and body["error"]["code"] == "TIMEOUT"
    assert time.monotonic() - sent < 1.5, (
        "answered at the deadline, not after the handler"
    )
    assert body["meta"]["traceId"] == TRACE

    # The orphan is held, logged once when it outlives its cancellation, and shutdown
    # stops it within its bound.
    await asyncio.sleep(1.2)
    [outlived] = logs.events("plugin.handler_outlived_cancellation")
    assert "lowcode-bad 1.2.3" in outlived["message"] and outlived["traceId"] == TRACE
    assert outlived["plugin"] == "lowcode-bad"
    closing = time.monotonic()
    await client.close()
    assert time.monotonic() - closing < 3.5


@pytest.mark.parametrize(
    "operation,what",
    [
        ("set", "data.tags is a set"),
        ("datetime", "data.rows[0].at is a datetime"),
        ("object", "data is a Loop"),
        ("nan", "data.ratio is nan, which JSON cannot hold"),
        ("loop", "data.self refers back to itself"),
        ("meta", "meta.when is a date"),
        ("deep", "is nested more than 500 levels deep"),
        ("big_int", "data.n is an integer of 16610 bits, too long to write"),
        ("surrogate", "data.rows[1] holds a lone surrogate (U+D800 at position 5)"),
        ("dict", "cannot answer: it is a dict, not a lowcode_runtime.Result"),
        ("none", "cannot answer: it is a NoneType, not a lowcode_runtime.Result"),
        ("str", "cannot answer: it is a str, not a lowcode_runtime.Result"),
        ("meta_list", "cannot answer: its meta is a list, not a dict"),
    ],
)
async def test_a_result_that_is_not_json_is_an_internal_error_naming_the_plugin(
    client, logs, operation, what
):
    status, body = await run(client, operation)

    assert status == 500
    assert body["error"]["code"] == "INTERNAL"
    message = body["error"]["message"]
    assert "lowcode-bad 1.2.3" in message and "'bad'" in message
    assert what in message
    assert body["meta"]["traceId"] == TRACE

    [bad] = logs.events("plugin.bad_result")
    assert bad["traceId"] == TRACE and bad["plugin"] == "lowcode-bad"
    [error] = logs.events("dataSource.call.error")
    assert error["errorCode"] == "INTERNAL"
    assert not logs.events("dataSource.call.success")


NOSY_PLUGIN = """
from lowcode_runtime import hookimpl


@hookimpl
def datasource_call_started(call):
    raise RuntimeError("the nosy plugin broke on start")


@hookimpl
def datasource_call_finished(call, outcome):
    raise ValueError("the nosy plugin broke on finish")
"""


async def test_an_observer_hook_that_raises_is_logged_and_the_call_goes_on(
    tmp_path, monkeypatch, make_client, logs
):
    from tests.support import EchoPlugin

    monkeypatch.syspath_prepend(str(tmp_path))
    write_distribution(tmp_path, "lowcode-nosy", "nosy_plugin", NOSY_PLUGIN, "nosy")
    try:
        client = await make_client(extra_plugins=(("echo", EchoPlugin()),))
        response = await client.post(
            EXECUTE,
            json={
                "dataSource": {"type": "echo", "name": "e"},
                "operation": "echo",
                "params": {"value": 1},
            },
            headers={**AUTH, "x-trace-id": TRACE},
        )
    finally:
        sys.modules.pop("nosy_plugin", None)

    assert response.status == 200
    assert (await response.json())["data"]["value"] == 1
    failed = logs.events("plugin.hook_failed")
    assert [f["hook"] for f in failed] == [
        "datasource_call_started",
        "datasource_call_finished",
    ]
    assert all(f["plugin"] == "lowcode-nosy" for f in failed)
    assert all("of lowcode-nosy 1.2.3 (" in f["message"] for f in failed)
    assert all(f["traceId"] == TRACE for f in failed)
    assert "RuntimeError: the nosy plugin broke" in failed[0]["exception"]
    assert logs.events("dataSource.call.success")
