"""Single calls before the load: the table is created, and every server answers alike.

A baseline that answered something else than the service would measure something else, so
each sample call must give the same ``data`` from the service, the floor and Fastify (a new
row's id aside), and the rest call the upstream's own document.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bench.cases import DB_CASES, SAMPLE_PARAMS, TABLE


class AnswersDiffer(RuntimeError):
    """A server answered a sample call otherwise than the service."""


async def execute(
    http: aiohttp.ClientSession,
    url: str,
    path: str,
    token: str,
    body: dict[str, Any],
) -> Any:
    """The ``data`` of one execute call; AnswersDiffer unless it is a 200 with ``ok``."""
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(url + path, json=body, headers=headers) as response:
        text = await response.text()
    answer = json.loads(text) if text.startswith("{") else {}
    if response.status != 200 or answer.get("ok") is not True:
        raise AnswersDiffer(f"{url} answered {response.status}: {text[:500]}")
    return answer["data"]


def db_body(operation: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    params = SAMPLE_PARAMS[operation] if params is None else params
    return {"dataSource": TABLE, "operation": operation, "params": params}


def _comparable(operation: str, data: Any) -> Any:
    if operation == "create":
        return {k: v for k, v in data.items() if k != "id"}
    return data


async def compare_db(
    http: aiohttp.ClientSession,
    path: str,
    token: str,
    service_url: str,
    baselines: dict[str, str],
) -> None:
    """Each db sample call answers the same data from the service and every baseline."""
    for operation in DB_CASES:
        body = db_body(operation)
        expected = await execute(http, service_url, path, token, body)
        for name, url in baselines.items():
            data = await execute(http, url, path, token, body)
            if _comparable(operation, data) != _comparable(operation, expected):
                raise AnswersDiffer(
                    f"{name} answers {operation} otherwise than the service:\n"
                    f"service: {json.dumps(expected)[:400]}\n{name}: {json.dumps(data)[:400]}"
                )


async def compare_rest(
    http: aiohttp.ClientSession,
    path: str,
    token: str,
    service_url: str,
    rest: dict[str, Any],
) -> None:
    """The service's rest call gives the upstream's document, fetched directly."""
    body = {"dataSource": rest, "operation": "request", "params": {}}
    through = await execute(http, service_url, path, token, body)
    async with http.get(rest["url"]) as response:
        direct = await response.json()
    if through != direct:
        raise AnswersDiffer("the rest call does not give the upstream's document")
