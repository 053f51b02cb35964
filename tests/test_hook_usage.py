"""Every hook is used by a plugin that is not built in, and documented from its docstring.

``HookRecorder`` is such a plugin: it implements each hook the examples do not, and the tests
below drive the service so that each of them is really called.
"""

from __future__ import annotations

import ast
import inspect
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lowcode_runtime import Call, hookimpl, hookspecs, ok_response
from lowcode_runtime.app import create_app
from lowcode_runtime.cli import build_parser
from lowcode_runtime.keys import SECRETS
from lowcode_runtime.plugins import PluginError, build_plugin_manager
from lowcode_runtime.server import service_resources
from tests.conftest import AUTH
from tests.support import EchoPlugin

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
EXECUTE = "/v1/projects/p/datasources/execute"


class RecorderSecrets:
    async def fetch(self, project_id: str) -> dict[str, str]:
        return {"FROM_RECORDER": f"secret-of-{project_id}"}

    async def close(self) -> None:
        return None


class HookRecorder:
    """A third party's plugin that records every hook the core calls on it."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    @hookimpl
    def register_secrets_provider(self, settings):
        self.seen.append(("register_secrets_provider",))
        return RecorderSecrets()

    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        async def hello(request: web.Request) -> web.Response:
            return ok_response(request, {"hello": "recorder"})

        app.router.add_get("/v1/recorder", hello)

    @hookimpl
    def register_commands(self, subparsers) -> None:
        command = subparsers.add_parser("recorder-hello", help="say hello")
        command.set_defaults(func=lambda args: 7 if args.plugin_manager else 1)

    @hookimpl
    def runtime_service_resources(self, settings):
        @contextmanager
        def resource():
            self.seen.append(("resource", "entered"))
            yield {"log_level": "trace"}
            self.seen.append(("resource", "exited"))

        return resource()

    @hookimpl
    def runtime_startup(self, app, settings) -> None:
        self.seen.append(("startup",))

    @hookimpl
    async def runtime_shutdown(self, app) -> None:
        self.seen.append(("shutdown",))

    @hookimpl
    def runtime_readiness(self, app):
        async def check() -> dict[str, Any]:
            return {"name": "recorder", "ok": True}

        return check()

    @hookimpl
    def datasource_call_started(self, call: Call) -> None:
        self.seen.append(("started", call.type, call.operation))

    @hookimpl
    def datasource_call_finished(self, call, outcome, error_code, duration_ms) -> None:
        assert duration_ms >= 0
        self.seen.append(("finished", call.operation, outcome, error_code))

    @hookimpl
    def migration_applied(self, project_id, data_source, statements, outcome) -> None:
        self.seen.append(("migration", project_id, data_source, outcome, statements))


def echo(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataSource": {"type": "echo", "name": "e"},
        "operation": operation,
        "params": params,
    }


async def test_call_life_cycle_hooks_see_each_call_and_its_outcome(make_client):
    recorder = HookRecorder()
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()), ("recorder", recorder)),
        load_entry_points=False,
    )
    await client.post(EXECUTE, json=echo("echo", {"value": 1}), headers=AUTH)
    await client.post(EXECUTE, json=echo("crash", {}), headers=AUTH)

    calls = [s for s in recorder.seen if s[0] in ("started", "finished")]
    assert calls == [
        ("started", "echo", "echo"),
        ("finished", "echo", "success", None),
        ("started", "echo", "crash"),
        ("finished", "crash", "error", "INTERNAL"),
    ]


async def test_migration_applied_reports_each_migration_once(make_db_client):
    recorder = HookRecorder()
    db = await make_db_client(extra_plugins=(("recorder", recorder),))

    await db.ok("list")
    await db.ok("list")

    [migration] = [s for s in recorder.seen if s[0] == "migration"]
    _, project, data_source, outcome, statements = migration
    assert (project, data_source, outcome) == (db.project, "orders", "applied")
    assert any(s.startswith("CREATE TABLE") for s in statements)


async def test_start_up_hooks_routes_secrets_readiness_and_shutdown(make_settings):
    recorder = HookRecorder()
    pm = build_plugin_manager(
        load_entry_points=False, extra_plugins=(("recorder", recorder),)
    )
    async with TestClient(TestServer(create_app(make_settings(), pm))) as client:
        hello = await client.get("/v1/recorder", headers=AUTH)
        assert (await hello.json())["data"] == {"hello": "recorder"}

        ready = await (await client.get("/ready")).json()
        assert {"name": "recorder", "ok": True} in ready["checks"]

        secrets = await client.app[SECRETS].get("p9")
        assert secrets == {"FROM_RECORDER": "secret-of-p9"}
        assert ("startup",) in recorder.seen and ("shutdown",) not in recorder.seen

    assert recorder.seen[-1] == ("shutdown",)
    assert ("register_secrets_provider",) in recorder.seen


def test_service_resources_and_commands(make_settings):
    recorder = HookRecorder()
    pm = build_plugin_manager(
        load_entry_points=False, extra_plugins=(("recorder", recorder),)
    )

    with service_resources(make_settings(log_level="info"), pm) as settings:
        assert settings.log_level == "trace"
        assert recorder.seen == [("resource", "entered")]
    assert recorder.seen[-1] == ("resource", "exited")

    args = build_parser(pm).parse_args(["recorder-hello"])
    args.plugin_manager = pm
    assert args.func(args) == 7


# --- meta-tests: a new hook needs a plugin outside the core that uses it, and its docs ------


def hookspec_functions() -> list[Any]:
    return [
        f
        for f in vars(hookspecs).values()
        if callable(f) and hasattr(f, "lowcode_runtime_spec")
    ]


def _is_hookimpl(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = (
        target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    )
    return name == "hookimpl"


def hooks_implemented_outside_the_core() -> dict[str, set[str]]:
    """Hook name -> files (examples and tests) with a ``@hookimpl`` function of that name."""
    found: dict[str, set[str]] = {}
    files = [
        *ROOT.joinpath("examples").rglob("*.py"),
        *ROOT.joinpath("tests").rglob("*.py"),
    ]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and any(_is_hookimpl(d) for d in node.decorator_list):
                found.setdefault(node.name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_hookspec_is_implemented_by_a_plugin_that_is_not_built_in():
    implemented = hooks_implemented_outside_the_core()
    specs = hookspec_functions()

    assert len(specs) >= 11
    for spec in specs:
        assert spec.__name__ in implemented, (
            f"hook {spec.__name__!r} has no plugin outside lowcode_runtime/ and plugins/: "
            "use it in an example or in HookRecorder (tests/test_hook_usage.py)"
        )


def _plain(text: str) -> str:
    """Docstring or Markdown as comparable text: rst literals as Markdown, one space."""
    return " ".join(text.replace("``", "`").split())


def guide_section(guide: str, name: str) -> str:
    match = re.search(rf"^### `{name}\(.*?(?=^##)", guide + "\n##", re.M | re.S)
    assert match, f"docs/plugins.md has no '### `{name}(...)' heading"
    return match.group(0)


def test_every_hook_is_documented_with_its_signature_and_its_docstring():
    guide = GUIDE.read_text()
    for spec in hookspec_functions():
        params = ", ".join(inspect.signature(spec).parameters)
        assert f"### `{spec.__name__}({params})" in guide, spec.__name__
        assert spec.__doc__, f"{spec.__name__} has no docstring"
        docstring = _plain(inspect.cleandoc(spec.__doc__))
        assert docstring in _plain(guide_section(guide, spec.__name__)), (
            f"docs/plugins.md under {spec.__name__} must repeat its docstring word for word"
        )


class RefusesToStart:
    @hookimpl
    async def runtime_startup(self, app, settings) -> None:
        raise ConnectionError("its cache is down")


class StartsAndStops:
    def __init__(self, seen: list[str], name: str) -> None:
        self.seen, self.name = seen, name

    @hookimpl
    def runtime_startup(self, app, settings) -> None:
        self.seen.append(f"{self.name} started")

    @hookimpl
    async def runtime_shutdown(self, app) -> None:
        self.seen.append(f"{self.name} stopped")


async def test_plugins_that_started_are_shut_down_when_a_later_one_fails(make_settings):
    """What they opened is closed, newest first, although the service never serves."""
    seen: list[str] = []
    plugins = [(name, StartsAndStops(seen, name)) for name in ("second", "first")]
    pm = build_plugin_manager(  # pluggy calls the plugin registered last first
        load_entry_points=False, extra_plugins=(("refuses", RefusesToStart()), *plugins)
    )
    app = create_app(make_settings(), pm)
    app.freeze()

    with pytest.raises(PluginError, match="'refuses'.*its cache is down"):
        await app.startup()

    assert seen == [
        "first started",
        "second started",
        "second stopped",
        "first stopped",
    ]
