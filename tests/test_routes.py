"""The service's own routes: health, ready, OpenAPI, metrics, plugins."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from lowcode_runtime import hookimpl
from tests.conftest import AUTH
from tests.support import EchoPlugin


class FailingReadiness:
    @hookimpl
    def runtime_readiness(self, app):
        async def check():
            return {
                "name": "thing",
                "ok": False,
                "code": "DB_UNAVAILABLE",
                "message": "thing is down",
            }

        return check()


async def test_health(make_client):
    client = await make_client(load_entry_points=False)
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_asks_each_plugin(make_client):
    healthy = await make_client(load_entry_points=False)
    assert (await healthy.get("/ready")).status == 200

    failing = await make_client(
        extra_plugins=(("f", FailingReadiness()),), load_entry_points=False
    )
    response = await failing.get("/ready")
    body = await response.json()
    assert response.status == 503
    assert body["ok"] is False and body["error"]["code"] == "DB_UNAVAILABLE"
    assert body["error"]["message"] == "thing is down"


async def test_openapi_is_valid_and_lists_types(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    assert "/v1/projects/{projectId}/datasources/execute" in document["paths"]
    assert "echoDefinition" in document["components"]["schemas"]


async def test_openapi_of_the_installed_service_is_valid(make_client):
    client = await make_client()
    validate(await (await client.get("/openapi.json")).json())


async def test_openapi_projectid_schema_holds_what_the_service_refuses(make_client):
    """A generator that keeps to the document never sends a projectId refused for its form."""
    import re

    client = await make_client()
    document = await (await client.get("/openapi.json")).json()
    execute = document["paths"]["/v1/projects/{projectId}/datasources/execute"]["post"]
    [schema] = [p["schema"] for p in execute["parameters"] if p["name"] == "projectId"]

    def fits(value: str) -> bool:
        return (
            schema["minLength"] <= len(value) <= schema["maxLength"]
            and re.search(schema["pattern"], value) is not None
        )

    for value in (
        "p" * schema["maxLength"],
        "p" * (schema["maxLength"] + 1),
        "%20%20",
        "a",
    ):
        text = value.replace("%20", " ")
        response = await client.post(
            f"/v1/projects/{value}/datasources/execute", json={}, headers=AUTH
        )
        body = await response.json()
        refused_for_id = any(
            d["path"] == "projectId" for d in body["error"].get("details") or []
        )
        assert refused_for_id is not fits(text), (value, body)


async def test_metrics_count_calls_and_requests(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    await client.post(
        "/v1/projects/p/datasources/execute",
        json={
            "dataSource": {"type": "echo", "name": "e"},
            "operation": "echo",
            "params": {"value": 1},
        },
        headers=AUTH,
    )
    response = await client.get("/metrics", headers=AUTH)
    text = await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    assert (
        'lowcode_datasource_calls_total{operation="echo",outcome="success",type="echo"}'
        in text
    )
    assert "lowcode_datasource_call_duration_seconds_bucket" in text
    assert 'route="/v1/projects/{projectId}/datasources/execute"' in text
    # One process answers the series that workers summed by a scrape answer, no more.
    assert "_created" not in text


async def test_plugins_route_lists_builtins(make_client):
    client = await make_client()
    body = await (await client.get("/v1/plugins", headers=AUTH)).json()
    assert body["ok"] is True
    for entry in body["data"]:
        assert set(entry) == {"type", "operations", "plugin"}
        assert set(entry["plugin"]) == {"name", "version"}


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("DELETE", "/v1/plugins", 405, "GET,HEAD"),  # a method the catch-all answers
        ("PROPFIND", "/v1/plugins", 405, "GET,HEAD"),  # one only the router sees
        ("GET", "/v1/projects/p1/datasources/execute", 405, "POST"),
        ("PROPFIND", "/no/such/path", 404, None),
        ("OPTIONS", "/v1/plugins", 405, "GET,HEAD"),  # not a CORS preflight: no Origin
        ("OPTIONS", "/no/such/path", 404, None),
    ],
)
async def test_a_wrong_method_is_told_the_methods_of_the_path(
    make_client, method, path, status, allow
):
    client = await make_client(load_entry_points=False)

    response = await client.request(method, path, headers=AUTH)
    body = await response.json()

    assert response.status == status, body
    assert body["error"]["code"] == "NOT_FOUND"
    assert response.headers.get("Allow") == allow
    assert "x-trace-id" in response.headers


async def test_the_execute_route_says_which_schemas_go_with_each_type(make_client):
    """The request body's schema cannot tie a type to its definition and params: an
    extension of the route does, by reference to the components."""
    client = await make_client()
    document = await (await client.get("/openapi.json")).json()
    execute = document["paths"]["/v1/projects/{projectId}/datasources/execute"]["post"]
    types = execute["x-lowcode-datasource-types"]

    assert set(types) >= {"db", "rest"}
    assert set(types["db"]["operations"]) == {
        "list",
        "get",
        "create",
        "update",
        "delete",
    }
    schemas = document["components"]["schemas"]
    for described in types.values():
        refs = [described["definition"]["$ref"]]
        refs += [op["params"]["$ref"] for op in described["operations"].values()]
        for ref in refs:
            assert ref.removeprefix("#/components/schemas/") in schemas, ref
