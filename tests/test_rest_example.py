"""The example of docs/rest.md, run as written: same files, settings, requests, answers."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from aiohttp import web

from lowcode_runtime.config import load_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "rest.md"
DOC_UPSTREAM = "127.0.0.1:8081"
DOC_SERVICE = "http://127.0.0.1:3001"


def blocks(text: str, marker: str, lang: str) -> list[tuple[str, str]]:
    pattern = rf"<!-- {marker}:? ?(\S*) -->\n```{lang}\n(.*?)\n```"
    return re.findall(pattern, text, re.DOTALL)


def serve_env(text: str) -> dict[str, str]:
    """The variables of the block that starts the service."""
    block = next(
        b for b in re.findall(r"```sh\n(.*?)\n```", text, re.DOTALL) if " serve" in b
    )
    return dict(re.findall(r"^([A-Z_]+)=(\S+) \\$", block, re.MULTILINE))


def parse_curl(command: str) -> tuple[str, dict[str, str], str]:
    words = shlex.split(command.replace("\\\n", " "))
    path = next(w for w in words if w.startswith(DOC_SERVICE))[len(DOC_SERVICE) :]
    headers = dict(
        words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H"
    )
    body = words[words.index("-d") + 1]
    return path, headers, body


def contains(actual: Any, expected: Any) -> bool:
    """``expected`` is ``actual`` with some object keys left out."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    return actual == expected


async def test_the_documented_example_answers_as_documented(
    make_client, aiohttp_server, tmp_path
):
    text = DOC.read_text(encoding="utf-8")
    for name, content in blocks(text, "file", "json"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n", encoding="utf-8")

    authorizations = []

    @web.middleware
    async def record(request, handler):
        authorizations.append(request.headers.get("Authorization"))
        return await handler(request)

    static = web.Application(middlewares=[record])
    static.router.add_static("/", tmp_path / "demo")
    server = await aiohttp_server(static, host="127.0.0.1")

    env = serve_env(text)
    env["SECRETS_FILE"] = str(tmp_path / env["SECRETS_FILE"])
    client = await make_client(settings=load_settings(env))

    requests = [command for _, command in blocks(text, "request", "sh")]
    responses = [json.loads(answer) for _, answer in blocks(text, "response", "json")]
    assert len(requests) == len(responses) == 2

    for command, expected in zip(requests, responses, strict=True):
        path, headers, body = parse_curl(command)
        body = body.replace(DOC_UPSTREAM, f"127.0.0.1:{server.port}")
        response = await client.post(path, data=body.encode(), headers=headers)
        answer = await response.json()

        assert contains(answer, expected), json.dumps(answer, indent=1)

    secret = json.loads((tmp_path / "secrets.json").read_text())["demo"]["ORDERS_TOKEN"]
    assert authorizations == [f"Bearer {secret}"]


def test_the_example_runs_the_projects_python_and_says_to_stop_the_readmes_service():
    text = DOC.read_text(encoding="utf-8")
    commands = "\n".join(re.findall(r"```sh\n(.*?)\n```", text, re.DOTALL))

    # A bare ``python`` is not the venv's after the README's install.
    assert not re.search(r"(^|[\s&;])python3? -m", commands, re.MULTILINE), commands
    assert ".venv/bin/python -m lowcode_runtime serve --port 3001" in commands
    # The README's service already listens on 3001, with other settings.
    assert "Stop the README's service first" in text
