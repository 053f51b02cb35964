"""A plugin the core cannot run is logged and skipped at load; the service starts without it.

Each fault comes from a real distribution (entry-point metadata on ``sys.path``), as a third
party's would.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lowcode_runtime.plugins import build_plugin_manager, build_type_registry
from tests.conftest import AUTH, TOKEN
from tests.data.service import Service, clean_environ
from tests.support import write_distribution

HEADER = """
import asyncio
from marshmallow import Schema
from lowcode_runtime import DataSourceType, Result, hookimpl

class Nothing(Schema):
    pass

async def handle(call):
    return Result(1)

def typed(name, handler=handle, **operations):
    return DataSourceType(name=name, definition_schema=Nothing(),
                          operations=operations or {"run": Nothing()}, handler=handler)
"""

FAULTS = {
    "unknown_hook": (
        "@hookimpl\ndef register_datasource_typez():\n    return []\n",
        "'register_datasource_typez', which is not a hook of lowcode_runtime",
    ),
    "bad_arguments": (
        "@hookimpl\ndef register_routes(app, router):\n    pass\n",
        "PluginValidationError",
    ),
    "returns_dict": (
        "@hookimpl\ndef register_datasource_types():\n    return {'x': typed('x')}\n",
        "register_datasource_types returned a dict; it must return a list",
    ),
    "returns_one": (
        "@hookimpl\ndef register_datasource_types():\n    return typed('x')\n",
        "returned a DataSourceType; it must return a list of DataSourceType",
    ),
    "raises": (
        "@hookimpl\ndef register_datasource_types():\n    raise RuntimeError('no config')\n",
        "RuntimeError: no config",
    ),
    "empty_name": (
        "@hookimpl\ndef register_datasource_types():\n    return [typed('')]\n",
        "dataSource type name '' is not usable",
    ),
    "spaced_name": (
        "@hookimpl\ndef register_datasource_types():\n    return [typed('my type')]\n",
        "dataSource type name 'my type' is not usable",
    ),
    "slashed_name": (
        "@hookimpl\ndef register_datasource_types():\n    return [typed('a/b')]\n",
        "dataSource type name 'a/b' is not usable",
    ),
    "long_name": (
        "@hookimpl\ndef register_datasource_types():\n    return [typed('t' * 101)]\n",
        "is not usable: use 1 to 100 letters",
    ),
    "sync_handler": (
        "@hookimpl\ndef register_datasource_types():\n"
        "    return [typed('x', handler=lambda call: None)]\n",
        "the handler of dataSource type 'x' must be an async function",
    ),
    "promptly_not_bool": (
        "@hookimpl\ndef register_datasource_types():\n"
        "    return [DataSourceType(name='x', definition_schema=Nothing(),\n"
        "                           operations={}, handler=handle,\n"
        "                           cancels_promptly='yes')]\n",
        "the cancels_promptly of dataSource type 'x' must be True or False",
    ),
    "routes_raise": (
        "@hookimpl\ndef register_datasource_types():\n    return [typed('x')]\n"
        "async def half(request):\n    return None\n"
        "@hookimpl\ndef register_routes(app):\n"
        "    app.router.add_get('/v1/half', half)\n"
        "    raise RuntimeError('no route config')\n",
        "RuntimeError: no route config",
    ),
    "async_observer": (
        "@hookimpl\nasync def datasource_call_finished(call, outcome):\n    pass\n",
        "its datasource_call_finished is async def, but the hook is synchronous",
    ),
    "schema_class": (
        "@hookimpl\ndef register_datasource_types():\n"
        "    return [DataSourceType(name='x', definition_schema=Nothing,\n"
        "                           operations={}, handler=handle)]\n",
        "the definition_schema of dataSource type 'x' is the Schema class Nothing, not an "
        "instance: pass Nothing()",
    ),
    "no_hookimpl": (
        "def register_datasource_types():\n    return [typed('x')]\n",
        "it implements no hook of lowcode_runtime: register_datasource_types lacks "
        "@lowcode_runtime.hookimpl",
    ),
}


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for fault in FAULTS:
        sys.modules.pop(f"faulty_{fault}", None)
    sys.modules.pop("fine_plugin", None)


def install(site, fault):
    source, _ = FAULTS[fault]
    write_distribution(
        site, f"lowcode-{fault}", f"faulty_{fault}", HEADER + source, fault
    )
    write_distribution(
        site,
        "lowcode-fine",
        "fine_plugin",
        HEADER
        + "@hookimpl\ndef register_datasource_types():\n    return [typed('fine')]\n",
        "fine",
    )


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_faulty_plugin_is_skipped_and_the_service_starts(
    site, logs, make_client, fault
):
    install(site, fault)
    client = await make_client()

    response = await client.get("/v1/plugins", headers=AUTH)
    types = [t["type"] for t in (await response.json())["data"]]
    assert "fine" in types and "x" not in types
    [failed] = logs.events("plugin.load_failed")
    assert failed["plugin"] == fault and failed["distribution"] == f"lowcode-{fault}"
    assert FAULTS[fault][1] in failed["reason"]


def test_a_skipped_plugin_is_listed_as_failed_by_the_plugins_command(site):
    install(site, "returns_dict")
    result = subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", "plugins", "--json"],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin:/usr/sbin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert "fine" in [t["type"] for t in listed["types"]]
    [failed] = listed["failed"]
    assert failed["entryPoint"] == "returns_dict"
    assert failed["plugin"] == {"name": "lowcode-returns_dict", "version": "1.2.3"}
    assert failed["reason"].startswith("register_datasource_types returned a dict")


def test_a_skipped_plugin_runs_none_of_its_hooks_and_is_reported_once(site, logs):
    install(site, "raises")
    pm = build_plugin_manager()
    build_type_registry(pm)
    build_type_registry(pm)

    assert not pm.has_plugin("raises")
    assert [f.entry_point for f in pm.load_failures] == ["raises"]
    assert len(logs.events("plugin.load_failed")) == 1


async def test_the_routes_of_a_plugin_whose_register_routes_raised_are_not_served(
    site, make_client
):
    install(site, "routes_raise")
    client = await make_client()

    response = await client.get("/v1/half", headers=AUTH)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"
    document = await (await client.get("/openapi.json")).json()
    assert "/v1/half" not in document["paths"]


def run_cli(site, *args):
    return subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", *args],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin:/usr/sbin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_plugin_whose_register_routes_raised_is_listed_as_failed(site):
    install(site, "routes_raise")
    result = run_cli(site, "plugins", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    types = [t["type"] for t in listed["types"]]
    assert "fine" in types and "x" not in types
    [failed] = listed["failed"]
    assert failed["entryPoint"] == "routes_raise"
    assert failed["reason"] == "RuntimeError: no route config"


NO_START = """
from lowcode_runtime import hookimpl

@hookimpl
async def runtime_startup(app, settings):
    raise {error}
"""


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ('ConnectionError("cache at port 1 refused")',
         "ConnectionError: cache at port 1 refused"),
        # Not the process's own exit or interrupt: the plugin's failure, said so once.
        ("SystemExit(3)", "SystemExit: 3"),
        ("KeyboardInterrupt()", "KeyboardInterrupt"),
    ],
    ids=["error", "exit", "interrupt"],
)  # fmt: skip
@pytest.mark.parametrize(
    "args", [(), ("--workers", "2")], ids=["one-worker", "workers"]
)
async def test_a_plugin_that_cannot_start_stops_start_up_with_one_line_naming_it(
    site, database_url, args, error, reason
):
    plugin = NO_START.format(error=error)
    write_distribution(site, "lowcode-nostart", "nostart_plugin", plugin, "nostart")
    env = clean_environ(
        RUNTIME_BACKEND_AUTH_TOKEN=TOKEN,
        DATABASE_URL=database_url,
        PYTHONPATH=str(site),
    )
    service = Service(site, env, args).start()
    try:
        assert await service.wait_exit(timeout=60) == 1, service.text()
    finally:
        service.kill()
        sys.modules.pop("nostart_plugin", None)

    refused = service.events("plugin.refused")
    assert refused and all(
        line["message"]
        == (
            "plugin 'nostart' (lowcode-nostart 1.2.3) failed to start, so the service does "
            f"not serve: {reason}"
        )
        for line in refused
    )
    assert not service.events("service.command_failed")
    assert "Traceback" not in service.text()
    for line in service.text().splitlines():
        # JSON log lines, and with one worker the command's own line for people.
        assert line.startswith(("{", "lowcode-runtime: ")), f"not a JSON line: {line}"


COMMANDS_RAISE = """
from lowcode_runtime import hookimpl

@hookimpl
def register_commands(subparsers):
    subparsers.add_parser("half", help="a command whose plugin then failed")
    raise RuntimeError("cmd boom")
"""


def test_a_plugin_whose_register_commands_raised_is_skipped_and_commands_work(site):
    write_distribution(site, "lowcode-cmds", "cmds_plugin", COMMANDS_RAISE, "cmds")

    listed = run_cli(site, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    [failed] = json.loads(listed.stdout)["failed"]
    assert failed["entryPoint"] == "cmds"
    assert failed["reason"] == "RuntimeError: cmd boom"
    assert "plugin.load_failed" in listed.stderr

    helped = run_cli(site, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "plugins" in helped.stdout and "half" not in helped.stdout
    assert run_cli(site, "half").returncode == 2
