"""The execute route's frame: envelope, validation, deadline, tracing, call events."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from lowcode_runtime import context, hookimpl, middleware
from lowcode_runtime.http_client import make_session
from lowcode_runtime.types import Deadline
from tests.conftest import AUTH
from tests.support import EchoPlugin

EXECUTE = "/v1/projects/p1/datasources/execute"


def call(operation="echo", params=None, **definition):
    return {
        "dataSource": {"type": "echo", "name": "greeter", **definition},
        "operation": operation,
        "params": params if params is not None else {"value": 1},
    }


@pytest.fixture
def plugin():
    return EchoPlugin()


@pytest.fixture
async def client(make_client, plugin):
    return await make_client(extra_plugins=(("echo", plugin),), load_entry_points=False)


async def test_success_envelope_with_meta(client):
    response = await client.post(
        EXECUTE, json=call(params={"value": [1, 2]}), headers=AUTH
    )
    body = await response.json()
    assert response.status == 200
    assert body["ok"] is True
    assert body["data"] == {"greeting": "hello", "value": [1, 2]}
    meta = body["meta"]
    assert meta["dataSource"] == "greeter" and meta["type"] == "echo"
    assert meta["operation"] == "echo" and meta["redacted"] is False
    assert isinstance(meta["durationMs"], (int, float))
    assert meta["traceId"] == response.headers["x-trace-id"]
    assert meta["requestId"] == response.headers["x-request-id"]


async def test_unknown_type_and_operation(client):
    unknown = await client.post(
        EXECUTE,
        json={"dataSource": {"type": "nope", "name": "x"}, "operation": "list"},
        headers=AUTH,
    )
    assert unknown.status == 400
    assert (await unknown.json())["error"]["code"] == "UNKNOWN_DATASOURCE_TYPE"

    unsupported = await client.post(EXECUTE, json=call(operation="list"), headers=AUTH)
    body = await unsupported.json()
    assert unsupported.status == 400
    assert body["error"]["code"] == "UNSUPPORTED_OPERATION"
    assert "echo" in body["error"]["message"]


async def test_validation_lists_every_violation_with_paths(client):
    bad = call(params={"count": "many"}, greeting=5, extra=True)
    response = await client.post(EXECUTE, json=bad, headers=AUTH)
    body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    paths = {d["path"] for d in body["error"]["details"]}
    assert {
        "dataSource.greeting",
        "dataSource.extra",
        "params.value",
        "params.count",
    } <= paths


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"operation": "echo"},
        {"dataSource": "x", "operation": "echo"},
        {"dataSource": {"type": "echo"}, "operation": "echo"},
        {
            "dataSource": {"type": "echo", "name": "x"},
            "operation": "echo",
            "params": [1],
        },
    ],
)
async def test_malformed_execute_bodies(client, body):
    response = await client.post(EXECUTE, json=body, headers=AUTH)
    result = await response.json()
    assert response.status == 400
    assert result["error"]["code"] == "VALIDATION_FAILED"
    assert result["error"]["details"]


async def test_blank_project_id_is_rejected(client):
    response = await client.post(
        "/v1/projects/%20%20/datasources/execute", json=call(), headers=AUTH
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize("encoded", ["p%01x", "p%1Fx", "p%7Fx", "%00"])
async def test_project_id_with_a_control_character_is_rejected(client, encoded):
    response = await client.post(
        f"/v1/projects/{encoded}/datasources/execute", json=call(), headers=AUTH
    )
    body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "projectId"


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        ("qa-%FF", "must be percent-encoded UTF-8"),
        ("qa-%ED%A0%80", "must be percent-encoded UTF-8"),
        ("qa-%C2%85x", "must not hold control or bidirectional formatting characters"),
        ("a%E2%80%AEb", "must not hold control or bidirectional formatting characters"),
        ("p" * 257, "must be at most 256 characters"),
        ("", "must not be empty or blank"),
    ],
    ids=[
        "not-utf8",
        "surrogate",
        "c1-control",
        "bidi",
        "too-long",
        "empty",
    ],
)
async def test_a_project_id_that_is_no_text_or_too_long_is_refused(
    client, encoded, problem
):
    response = await client.post(
        f"/v1/projects/{encoded}/datasources/execute", json=call(), headers=AUTH
    )
    body = await response.json()
    assert response.status == 400
    assert body["error"]["details"] == [{"path": "projectId", "message": problem}]


@pytest.mark.parametrize("raw", [b"qa-%G1", b"qa-2%"])
async def test_a_project_id_with_a_percent_that_is_no_escape_is_refused(client, raw):
    # Sent as written: the test client would encode the "%" as "%25".
    body = json.dumps(call()).encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /v1/projects/" + raw + b"/datasources/execute HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: " + AUTH["Authorization"].encode() + b"\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    answer = await reader.read()
    writer.close()

    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"path":"projectId"' in answer


async def test_a_project_id_holding_a_percent_sign_is_its_own(client):
    response = await client.post(
        "/v1/projects/qa-%25FF/datasources/execute", json=call(), headers=AUTH
    )
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("name", ["a\u0000b", "a\nb", "a\u0085b", "abc\u202edef"])
async def test_a_datasource_name_with_a_control_character_is_refused(
    client, logs, name
):
    response = await client.post(EXECUTE, json=call(name=name), headers=AUTH)
    body = await response.json()

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert [d["path"] for d in body["error"]["details"]] == ["dataSource.name"]
    assert "dataSource" not in body["meta"]
    assert not [line for line in logs.records() if line["level"] == "error"]


async def test_project_id_with_printable_unicode_is_accepted(client):
    response = await client.post(
        "/v1/projects/caf%C3%A9-%E2%82%AC/datasources/execute",
        json=call(),
        headers=AUTH,
    )
    assert response.status == 200, await response.text()


async def test_internal_error_hides_the_exception(client, logs):
    response = await client.post(
        EXECUTE, json=call(operation="crash", params={}), headers=AUTH
    )
    body = await response.json()
    assert response.status == 500
    assert body["error"]["code"] == "INTERNAL"
    assert "boom" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert "ZeroDivisionError" in logs.text, (
        "the fault is logged once for the person on call"
    )
    assert len([r for r in logs.records() if "exception" in r]) == 1


@pytest.mark.parametrize("cancels_promptly", [False, True])
async def test_a_handlers_plain_exception_is_logged_naming_its_plugin(
    make_client, logs, cancels_promptly
):
    plugin = EchoPlugin(cancels_promptly=cancels_promptly)
    client = await make_client(
        extra_plugins=(("echo", plugin),), load_entry_points=False
    )

    response = await client.post(
        EXECUTE, json=call(operation="crash", params={}), headers=AUTH
    )

    assert response.status == 500
    [fault] = logs.events("http.unhandled_error")
    assert fault["plugin"] and "ZeroDivisionError" in fault["message"]
    assert "ZeroDivisionError" in fault["exception"]
    [line] = logs.events("dataSource.call.error")
    assert line["errorCode"] == "INTERNAL"


@pytest.mark.parametrize("cancels_promptly", [False, True])
async def test_deadline_cancels_the_handler(make_client, cancels_promptly):
    plugin = EchoPlugin(cancels_promptly=cancels_promptly)
    client = await make_client(
        extra_plugins=(("echo", plugin),),
        load_entry_points=False,
        request_timeout_ms=300,
    )
    # An hour's sleep: any answer at all came from the deadline.
    response = await client.post(
        EXECUTE, json=call(operation="sleep", params={"seconds": 3600}), headers=AUTH
    )
    body = await response.json()
    assert response.status == 504
    assert body["error"]["code"] == "TIMEOUT"
    assert body["meta"]["operation"] == "sleep"
    if cancels_promptly:
        # Awaited in the request's task: the handler saw its cancellation before the answer.
        assert plugin.cancelled.is_set()
    await asyncio.wait_for(plugin.cancelled.wait(), 1)
    assert 0 < plugin.remaining_seen[0] <= 0.3


class TaskWitness:
    """Records the task the core's ``datasource_call_started`` hook runs in: the request's."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[object] | None] = []

    @hookimpl
    def datasource_call_started(self, call):
        self.tasks.append(asyncio.current_task())


@pytest.mark.parametrize("cancels_promptly", [False, True])
async def test_a_type_that_cancels_promptly_runs_in_the_request_task(
    make_client, cancels_promptly
):
    plugin, witness = EchoPlugin(cancels_promptly=cancels_promptly), TaskWitness()
    client = await make_client(
        extra_plugins=(("echo", plugin), ("witness", witness)), load_entry_points=False
    )
    response = await client.post(EXECUTE, json=call(), headers=AUTH)

    assert response.status == 200
    [request_task], [handler_task] = witness.tasks, plugin.tasks
    assert request_task is not None and handler_task is not None
    assert (handler_task is request_task) is cancels_promptly


async def test_trace_id_taken_when_well_formed(client):
    good = await client.post(
        EXECUTE, json=call(), headers={**AUTH, "x-trace-id": "abc.DEF_1-2"}
    )
    assert good.headers["x-trace-id"] == "abc.DEF_1-2"
    assert (await good.json())["meta"]["traceId"] == "abc.DEF_1-2"

    for bad in ("has space", "x" * 129, "semi;colon"):
        response = await client.post(
            EXECUTE, json=call(), headers={**AUTH, "x-trace-id": bad}
        )
        assert response.headers["x-trace-id"] != bad
        assert len(response.headers["x-request-id"]) >= 16


async def test_call_events_carry_the_contract_fields(client, logs):
    await client.post(EXECUTE, json=call(), headers={**AUTH, "x-trace-id": "trace-1"})
    await client.post(
        EXECUTE, json=call(params={}), headers={**AUTH, "x-trace-id": "trace-2"}
    )

    start = logs.events("dataSource.call.start")[0]
    success = logs.events("dataSource.call.success")[0]
    error = logs.events("dataSource.call.error")[0]
    assert start["level"] == "debug"
    for record in (success, error):
        for key in (
            "time",
            "level",
            "message",
            "traceId",
            "requestId",
            "projectId",
            "dataSource",
            "type",
            "operation",
            "durationMs",
            "status",
            "httpStatus",
        ):
            assert key in record, (key, record)
    assert success["traceId"] == "trace-1" and success["status"] == "success"
    assert success["httpStatus"] == 200 and success["projectId"] == "p1"
    assert error["traceId"] == "trace-2" and error["errorCode"] == "VALIDATION_FAILED"
    assert error["httpStatus"] == 400


async def test_lines_outside_a_request_carry_no_trace_fields(client, logs):
    from lowcode_runtime.logs import logger

    # A request served first must leave nothing behind in the code that runs after it.
    await client.post(EXECUTE, json=call(), headers={**AUTH, "x-trace-id": "served"})
    logger.info("outside, after a request")
    await asyncio.get_running_loop().run_in_executor(None, logger.info, "outside")
    assert "traceId" not in logs.records()[-1]
    outside = [r for r in logs.records() if r["message"].startswith("outside")]
    assert len(outside) == 2 and all("traceId" not in r for r in outside)


async def test_a_secret_is_masked_everywhere(client, logs):
    secret = "sup3r-s3cret-value-42"
    response = await client.post(
        EXECUTE,
        json=call(operation="leak", params={"value": secret}),
        headers={**AUTH, "x-trace-id": "leaky"},
    )
    answer = await response.text()
    assert response.status == 500
    metrics = await (await client.get("/metrics", headers=AUTH)).text()
    for text in (answer, logs.text, metrics, json.dumps(dict(response.headers))):
        assert secret not in text
    assert "[REDACTED]" in logs.text
    assert "RuntimeError" in logs.text, "the traceback is logged, masked"


async def test_bearer_tokens_and_dsn_passwords_are_masked(logs):
    from lowcode_runtime.logs import logger

    logger.info(
        "upstream said Authorization: Bearer abc.def-ghi and postgres://u:pa55@h/db"
    )
    assert "abc.def-ghi" not in logs.text and "pa55" not in logs.text


async def test_outbound_session_forwards_the_trace_id(aiohttp_server):
    seen = []

    async def record(request):
        seen.append(request.headers.get("x-trace-id"))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/", record)
    server = await aiohttp_server(app)
    token = context.trace_id_var.set("forward-me")
    try:
        async with make_session() as session:
            async with session.get(server.make_url("/")) as r:
                assert r.status == 200
            headers = {"x-trace-id": "written-by-a-definition"}
            async with session.get(server.make_url("/"), headers=headers) as r:
                assert r.status == 200
    finally:
        context.trace_id_var.reset(token)
    assert seen == ["forward-me", "forward-me"]


async def test_aiohttp_errors_use_the_envelope(client):
    for method, path, status in (
        ("GET", "/nowhere", 404),
        ("GET", EXECUTE, 405),
        ("DELETE", "/v1/plugins", 405),
    ):
        response = await client.request(method, path, headers=AUTH)
        body = await response.json()
        assert response.status == status
        assert body["ok"] is False and body["meta"]["traceId"]
    assert isinstance(aiohttp.__version__, str)


async def test_a_warm_definition_skips_its_schema(make_client):
    from marshmallow import post_load

    from tests.support import EchoDefinition

    loads = []

    class CountingDefinition(EchoDefinition):
        @post_load
        def count(self, data, **kwargs):
            loads.append(data)
            return data

    plugin = EchoPlugin()
    plugin.definition_schema = CountingDefinition()
    client = await make_client(
        extra_plugins=(("echo", plugin),), load_entry_points=False
    )

    for greeting in ("hi", "hi", "hi", "hello", "hi"):
        response = await client.post(
            EXECUTE, json=call(greeting=greeting), headers=AUTH
        )
        assert (await response.json())["data"]["greeting"] == greeting
    bad = await client.post(EXECUTE, json=call(greeting=5), headers=AUTH)
    again = await client.post(EXECUTE, json=call(greeting=5), headers=AUTH)

    assert [d["greeting"] for d in loads] == ["hi", "hello"]
    assert bad.status == again.status == 400, (
        "a refused definition is checked every time"
    )


async def test_a_deadline_timer_that_fires_early_cancels_only_once_the_deadline_passed():
    """A loop clock behind the monotonic one (uvloop's, read once per turn) fires early."""
    task = asyncio.current_task()
    assert task is not None
    deadline = Deadline.after(0.2)
    timer = middleware._DeadlineTimer(task, deadline)
    timer.handle.cancel()
    timer.handle = task.get_loop().call_later(0, timer)  # fires at once, 0.2 s early
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.sleep(10)
        assert timer.fired and deadline.expired()
    finally:
        timer.cancel()
        task.uncancel()


@pytest.mark.parametrize("cancels_promptly", [False, True])
async def test_a_handler_that_swallows_its_cancellation_still_times_out(
    make_client, cancels_promptly
):
    """With ``cancels_promptly`` set wrongly the answer waits for the handler, yet is TIMEOUT."""
    plugin = EchoPlugin(cancels_promptly=cancels_promptly)
    client = await make_client(
        extra_plugins=(("echo", plugin),),
        load_entry_points=False,
        request_timeout_ms=300,
    )
    response = await client.post(
        EXECUTE, json=call(operation="stubborn", params={"seconds": 5}), headers=AUTH
    )
    assert response.status == 504
    assert (await response.json())["error"]["code"] == "TIMEOUT"
    assert plugin.cancelled.is_set()


async def test_a_plugin_cannot_replace_the_core_meta(client):
    response = await client.post(
        EXECUTE,
        json=call(operation="spoof", params={}),
        headers={**AUTH, "x-trace-id": "real"},
    )
    meta = (await response.json())["meta"]
    assert meta["traceId"] == "real" and isinstance(meta["durationMs"], float)
    assert meta["extra"] == 1 and meta["operation"] == "spoof"


@pytest.mark.parametrize("params", [None, [], "x"])
async def test_a_refused_params_value_keeps_the_call_meta(client, params):
    body = {
        "dataSource": {"type": "echo", "name": "greeter"},
        "operation": "echo",
        "params": params,
    }
    response = await client.post(EXECUTE, json=body, headers=AUTH)
    answer = await response.json()
    assert response.status == 400
    assert (
        answer["meta"]["dataSource"] == "greeter" and answer["meta"]["type"] == "echo"
    )


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        (
            {**call(greeting={"a": 1}), "params": None},
            ["params", "dataSource.greeting"],
        ),
        ({**call(greeting=5), "params": [1]}, ["params", "dataSource.greeting"]),
        ({**call(greeting=5), "operation": ""}, ["operation", "dataSource.greeting"]),
        (
            {**call(greeting=5, name=""), "params": {}},
            ["dataSource.name", "dataSource.greeting"],
        ),
    ],
)
async def test_a_body_refused_for_its_shape_still_lists_what_the_definition_breaks(
    client, body, paths
):
    response = await client.post(EXECUTE, json=body, headers=AUTH)
    answer = await response.json()

    assert response.status == 400, answer
    assert [d["path"] for d in answer["error"]["details"]] == paths
