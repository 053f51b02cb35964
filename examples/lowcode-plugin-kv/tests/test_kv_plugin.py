"""The kv plugin, installed like any third-party package, run through the service with the
fixtures lowcode-runtime publishes."""

from __future__ import annotations

from pathlib import Path

import lowcode_plugin_kv

CART = {"type": "kv", "name": "cart", "namespace": "carts"}


def test_the_installed_copy_is_the_one_imported():
    here = Path(__file__).resolve().parent.parent
    module = Path(lowcode_plugin_kv.__file__).resolve()
    assert here not in module.parents, f"imported from the source tree: {module}"


async def test_put_then_get_per_project(lowcode_client):
    client = await lowcode_client()

    put = await client.execute(CART, "put", {"key": "u1", "value": {"items": 2}})
    assert put.data == {"key": "u1", "value": {"items": 2}}
    got = await client.execute(CART, "get", {"key": "u1"})
    assert got.data == {"key": "u1", "value": {"items": 2}}

    elsewhere = await client.execute(CART, "get", {"key": "u1"}, project="other")
    assert elsewhere.status == 404
    assert elsewhere.error["code"] == "NOT_FOUND"


async def test_params_are_checked_by_its_schemas(lowcode_client):
    client = await lowcode_client()
    answer = await client.execute({**CART, "namespace": ""}, "get", {})

    assert answer.status == 400
    paths = {d["path"] for d in answer.error["details"]}
    assert paths == {"dataSource.namespace", "params.key"}
