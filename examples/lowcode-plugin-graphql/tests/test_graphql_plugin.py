"""The graphql plugin as a third party tests it: installed, found by its entry point, and run
through the service with the fixtures lowcode-runtime publishes (``lowcode_client`` and the
rest), against a GraphQL-ish aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
from importlib import metadata
from pathlib import Path

import pytest
from aiohttp import web

import lowcode_plugin_graphql

SECRET = "s3cret-token-value"
LOOPBACK = ("127.0.0.1",)


def graphql_server(seen: list[dict]) -> web.Application:
    """Answers by the query's first word after ``{``: echo, fail, slow, http500, text, huge."""

    async def graphql(request: web.Request) -> web.Response:
        document = await request.json()
        seen.append({"headers": dict(request.headers), "document": document})
        field = document["query"].split("{", 1)[1].split()[0]
        if field == "fail":
            auth = request.headers.get("Authorization", "")
            return web.json_response(
                {
                    "data": None,
                    "errors": [
                        {
                            "message": f"credentials {auth} are not allowed here",
                            "path": ["fail"],
                            "extensions": {"code": "FORBIDDEN"},
                        }
                    ],
                }
            )
        if field == "slow":
            await asyncio.sleep(5)
        if field == "http500":
            return web.json_response({"message": "down"}, status=500)
        if field == "text":
            return web.Response(text="not json")
        if field == "huge":  # JSON, but past a float: no answer can carry it
            return web.Response(
                text='{"data": {"n": 1e400}}', content_type="application/json"
            )
        return web.json_response({"data": {"echo": document["variables"]}})

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    return app


@pytest.fixture
async def upstream(lowcode_upstream):
    seen: list[dict] = []
    server = await lowcode_upstream(graphql_server(seen))
    server.seen = seen
    return server


@pytest.fixture
async def client(lowcode_client):
    return await lowcode_client(
        egress_allow=LOOPBACK, secrets={"test-project": {"API_TOKEN": SECRET}}
    )


def source(upstream, query="query($id: ID!) { echo(id: $id) }", **extra):
    return {
        "type": "graphql",
        "name": "users",
        "endpoint": str(upstream.url("/graphql")),
        "query": query,
        **extra,
    }


def test_the_installed_copy_is_the_one_imported():
    here = Path(__file__).resolve().parent.parent
    module = Path(lowcode_plugin_graphql.__file__).resolve()
    assert here not in module.parents, f"imported from the source tree: {module}"

    dist = metadata.distribution("lowcode-plugin-graphql")
    [entry_point] = [
        ep for ep in dist.entry_points if ep.group == "lowcode_runtime.plugins"
    ]
    assert (entry_point.name, entry_point.value) == (
        "graphql",
        "lowcode_plugin_graphql",
    )
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    assert not direct.get("dir_info", {}).get("editable"), "installed editable"


async def test_listed_with_its_distribution(client):
    plugins = (await client.get("/v1/plugins")).data
    [graphql] = [p for p in plugins if p["type"] == "graphql"]
    assert graphql == {
        "type": "graphql",
        "operations": ["query"],
        "plugin": {"name": "lowcode-plugin-graphql", "version": "0.1.0"},
    }


async def test_a_query_posts_rendered_variables_and_headers(client, upstream):
    answer = await client.execute(
        source(
            upstream,
            variables={"id": "{{ params.id }}", "label": "user {{ params.id }}"},
            headers={"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
            operationName="Users",
        ),
        "query",
        {"id": 7},
        headers={"x-trace-id": "graphql-trace-1"},
    )

    assert answer.status == 200, answer.body
    assert answer.data == {"echo": {"id": 7, "label": "user 7"}}
    assert answer.body["meta"]["upstream"]["status"] == 200
    [sent] = upstream.seen
    assert sent["document"] == {
        "query": "query($id: ID!) { echo(id: $id) }",
        "variables": {"id": 7, "label": "user 7"},
        "operationName": "Users",
    }
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert sent["headers"]["x-trace-id"] == "graphql-trace-1"
    assert sent["headers"]["Content-Type"] == "application/json"


async def test_graphql_errors_are_upstream_status_with_messages_masked(
    client, upstream
):
    answer = await client.execute(
        source(
            upstream,
            query="{ fail }",
            headers={"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
        ),
        "query",
    )

    assert answer.status == 502
    error = answer.error
    assert error["code"] == "UPSTREAM_STATUS"
    assert error["details"]["status"] == 200
    assert error["details"]["errors"] == [
        {
            "message": "credentials Bearer [REDACTED] are not allowed here",
            "path": ["fail"],
            "code": "FORBIDDEN",
        }
    ]
    assert "1 error(s)" in error["message"] and "[REDACTED]" in error["message"]
    assert SECRET not in json.dumps(answer.body)
    assert answer.body["meta"]["redacted"] is True


async def test_a_non_2xx_answer_is_upstream_status(client, upstream):
    answer = await client.execute(source(upstream, query="{ http500 }"), "query")
    assert answer.status == 502
    assert answer.error["code"] == "UPSTREAM_STATUS"
    assert answer.error["details"]["status"] == 500


async def test_a_body_that_is_not_json_is_upstream_invalid_json(client, upstream):
    answer = await client.execute(source(upstream, query="{ text }"), "query")
    assert answer.status == 502
    assert answer.error["code"] == "UPSTREAM_INVALID_JSON"


async def test_a_number_past_a_float_is_upstream_invalid_json(client, upstream):
    answer = await client.execute(source(upstream, query="{ huge }"), "query")
    assert answer.status == 502
    assert answer.error["code"] == "UPSTREAM_INVALID_JSON"


async def test_the_egress_policy_holds(lowcode_client, upstream, lowcode_logs):
    client = await lowcode_client()  # loopback not allowed, as in production
    answer = await client.execute(source(upstream, query="{ echo }"), "query")

    assert answer.status == 403
    assert answer.error["code"] == "EGRESS_BLOCKED"
    assert upstream.seen == []
    assert lowcode_logs.events("graphql.egress_blocked")


async def test_timeout_ms_bounds_the_exchange(client, upstream):
    answer = await client.execute(
        source(upstream, query="{ slow }", timeoutMs=200), "query"
    )
    assert answer.status == 504
    assert answer.error["code"] == "TIMEOUT"
    assert answer.body["meta"]["durationMs"] < 2000


async def test_a_missing_secret_is_secret_not_found(client, upstream):
    answer = await client.execute(
        source(upstream, headers={"X-Key": "{{ secrets.NOPE }}"}), "query"
    )
    assert answer.status == 422
    assert answer.error["code"] == "SECRET_NOT_FOUND"
    assert upstream.seen == []


async def test_bad_definitions_and_params_are_validation_failed(client, upstream):
    answer = await client.execute(
        {
            "type": "graphql",
            "name": "users",
            "endpoint": "ftp://example.com/graphql",
            "variables": {"id": "{{ param.id }}"},
            "headers": {"Bad Name": "x"},
        },
        "query",
    )
    assert answer.status == 400
    paths = {d["path"] for d in answer.error["details"]}
    assert paths == {
        "dataSource.endpoint",
        "dataSource.query",
        "dataSource.variables.id",
        "dataSource.headers.Bad Name",
    }

    missing = await client.execute(
        source(upstream, variables={"id": "{{ params.id }}"}), "query", {}
    )
    assert missing.status == 400
    assert missing.error["details"][0]["path"] == "dataSource.variables"
    assert "params.id is not given" in missing.error["message"]
