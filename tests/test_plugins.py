"""Plugin discovery through real entry-point metadata, and the registry built from it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lowcode_runtime.app import create_app
from lowcode_runtime.plugins import (
    PluginConflict,
    build_plugin_manager,
    build_type_registry,
)
from tests.conftest import AUTH
from tests.support import DuplicateEcho, EchoPlugin, write_distribution

THIRD_PARTY = """
from marshmallow import Schema, fields
from lowcode_runtime import DataSourceType, Result, hookimpl

class Definition(Schema):
    unit = fields.String(required=True)

class Params(Schema):
    n = fields.Integer(required=True)

async def handle(call):
    return Result({"n": call.params["n"], "unit": call.definition["unit"]})

@hookimpl
def register_datasource_types():
    return [DataSourceType(name="counter", definition_schema=Definition(),
                           operations={"count": Params()}, handler=handle)]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path that acts as a second site-packages."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("counter_plugin", "broken_plugin", "counter_again", "badarg_plugin"):
        sys.modules.pop(name, None)


async def test_third_party_distribution_is_discovered(
    site, make_settings, aiohttp_client
):
    write_distribution(
        site, "lowcode-counter", "counter_plugin", THIRD_PARTY, "counter"
    )
    client = await aiohttp_client(create_app(make_settings(), build_plugin_manager()))

    plugins = (await (await client.get("/v1/plugins", headers=AUTH)).json())["data"]
    counter = next(p for p in plugins if p["type"] == "counter")
    assert counter == {
        "type": "counter",
        "operations": ["count"],
        "plugin": {"name": "lowcode-counter", "version": "1.2.3"},
    }

    response = await client.post(
        "/v1/projects/p/datasources/execute",
        json={
            "dataSource": {"type": "counter", "name": "c", "unit": "kg"},
            "operation": "count",
            "params": {"n": 3},
        },
        headers=AUTH,
    )
    assert (await response.json())["data"] == {"n": 3, "unit": "kg"}

    bad = await client.post(
        "/v1/projects/p/datasources/execute",
        json={
            "dataSource": {"type": "counter", "name": "c"},
            "operation": "count",
            "params": {"n": "x"},
        },
        headers=AUTH,
    )
    details = (await bad.json())["error"]["details"]
    assert {d["path"] for d in details} == {"dataSource.unit", "params.n"}


def test_builtins_come_from_our_own_entry_points():
    from importlib import metadata

    names = {
        ep.name: ep.value
        for ep in metadata.entry_points(group="lowcode_runtime.plugins")
        if ep.dist and ep.dist.metadata["Name"] == "lowcode-runtime"
    }
    assert names == {"rest": "lowcode_rest", "db": "lowcode_db"}


def test_a_plugin_that_fails_to_import_is_logged_and_skipped(site, logs):
    write_distribution(
        site, "lowcode-broken", "broken_plugin", "raise ImportError('nope')\n"
    )
    write_distribution(
        site, "lowcode-counter", "counter_plugin", THIRD_PARTY, "counter"
    )
    registry = build_type_registry(build_plugin_manager())

    assert "counter" in registry
    failures = logs.events("plugin.load_failed")
    assert [f["plugin"] for f in failures] == ["broken_plugin"]
    assert "ImportError" in failures[0]["exception"]


def test_two_plugins_claiming_one_type_stop_start_up():
    pm = build_plugin_manager(
        load_entry_points=False,
        extra_plugins=(("a", EchoPlugin()), ("b", DuplicateEcho())),
    )
    with pytest.raises(PluginConflict, match="'echo' is claimed by both"):
        build_type_registry(pm)


def test_conflict_exits_1_from_the_command_line(site):
    write_distribution(
        site, "lowcode-counter", "counter_plugin", THIRD_PARTY, "counter"
    )
    write_distribution(
        site, "lowcode-counter-again", "counter_again", THIRD_PARTY, "counter2"
    )
    result = subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", "plugins"],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin:/usr/sbin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "'counter' is claimed by both" in result.stderr


def _plugins_command(site, *flags):
    return subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", "plugins", *flags],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin:/usr/sbin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plugins_command_names_each_distribution_and_each_failure(site):
    write_distribution(
        site, "lowcode-counter", "counter_plugin", THIRD_PARTY, "counter"
    )
    write_distribution(
        site,
        "lowcode-broken",
        "broken_plugin",
        "raise ImportError('needs libfoo\\nsecond line')\n",
    )
    long_name = THIRD_PARTY.replace(
        '"counter"', '"counter_with_a_rather_long_type_name"'
    )
    assert long_name != THIRD_PARTY
    write_distribution(site, "lowcode-long", "long_plugin", long_name, "long")

    text = _plugins_command(site)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    # Each column starts where it does on every other line, whatever the names' lengths.
    starts = {line.index(" lowcode-") for line in lines}
    assert len(starts) == 1, text.stdout
    counter = next(line for line in lines if line.startswith("counter "))
    assert counter.split()[-2:] == ["lowcode-counter", "1.2.3"]
    broken = next(line for line in lines if line.startswith("broken_plugin "))
    assert "(failed to load)" in broken
    assert broken.endswith(
        "lowcode-broken 1.2.3: ImportError: needs libfoo; second line"
    )

    listed = json.loads(_plugins_command(site, "--json").stdout)
    counted = next(t for t in listed["types"] if t["type"] == "counter")
    assert counted["plugin"] == {"name": "lowcode-counter", "version": "1.2.3"}
    assert listed["failed"] == [
        {
            "entryPoint": "broken_plugin",
            "plugin": {"name": "lowcode-broken", "version": "1.2.3"},
            "reason": "ImportError: needs libfoo; second line",
        }
    ]


BAD_ARGUMENT = """
from lowcode_runtime import hookimpl

@hookimpl
def runtime_startup(app, settings, extra):
    pass
"""


def test_a_refused_hookimpl_keeps_its_cause_in_the_one_line_reason(site):
    write_distribution(site, "lowcode-badarg", "badarg_plugin", BAD_ARGUMENT, "badarg")

    listed = json.loads(_plugins_command(site, "--json").stdout)
    (failure,) = listed["failed"]
    reason = failure["reason"]

    assert reason.startswith(
        "PluginValidationError: Plugin 'badarg' for hook 'runtime_startup'; "
    )
    assert reason.endswith(
        "Argument(s) {'extra'} are declared in the hookimpl but can not be found in the "
        "hookspec"
    )
    assert "\n" not in reason


async def test_no_registry_hook_runs_on_the_hot_path(make_settings, aiohttp_client):
    pm = build_plugin_manager(
        load_entry_points=False, extra_plugins=(("echo", EchoPlugin()),)
    )
    client = await aiohttp_client(create_app(make_settings(), pm))
    calls: list[str] = []
    pm.add_hookcall_monitoring(lambda name, *_: calls.append(name), lambda *_: None)

    response = await client.post(
        "/v1/projects/p/datasources/execute",
        json={
            "dataSource": {"type": "echo", "name": "e"},
            "operation": "echo",
            "params": {"value": 1},
        },
        headers=AUTH,
    )
    assert response.status == 200
    assert "register_datasource_types" not in calls
    # No plugin here implements the call hooks, so they are not called either.
    assert calls == []


def test_example_distribution_installs_and_is_found(tmp_path):
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "lowcode-plugin-kv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(tmp_path),
            str(example),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    result = subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", "plugins", "--json"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/sbin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"type": "kv"' in result.stdout and '"lowcode-plugin-kv"' in result.stdout


def test_hook_calls_are_traced_when_asked(monkeypatch, logs):
    monkeypatch.setenv("LOWCODE_TRACE_HOOKS", "1")
    pm = build_plugin_manager(
        load_entry_points=False, extra_plugins=(("echo", EchoPlugin()),)
    )
    pm.hook.register_routes(app=None)
    build_type_registry(pm)

    traced = logs.events("plugin.hook_call")
    assert [t["hook"] for t in traced] == [
        "register_routes",
        "register_datasource_types",
    ]
    assert traced[1]["plugins"] == ["echo"]


def test_a_sync_handler_skips_its_plugin(logs):
    from lowcode_runtime import DataSourceType, hookimpl
    from tests.support import EchoDefinition

    class SyncPlugin:
        @hookimpl
        def register_datasource_types(self):
            def handle(call):
                return None

            return [DataSourceType("sync", EchoDefinition(), {}, handle)]

    pm = build_plugin_manager(
        load_entry_points=False,
        extra_plugins=(("s", SyncPlugin()), ("echo", EchoPlugin())),
    )
    assert list(build_type_registry(pm)) == ["echo"]
    [failed] = logs.events("plugin.load_failed")
    assert "'sync' must be an async function" in failed["reason"]


def test_every_error_class_is_listed_in_the_guide():
    from pathlib import Path

    from lowcode_runtime import errors

    guide = Path(__file__).parent.parent.joinpath("docs", "plugins.md").read_text()
    for name, value in vars(errors).items():
        if isinstance(value, type) and issubclass(value, errors.RuntimeBackendError):
            if value not in (errors.RuntimeBackendError, errors.MethodNotAllowed):
                assert f"`{name}`" in guide, name


def test_an_entry_point_naming_a_missing_module_says_so_apart_from_a_missing_import(
    site,
):
    write_distribution(site, "lowcode-gone", "gone_plugin", "", "gone")
    (site / "gone_plugin.py").unlink()
    write_distribution(
        site, "lowcode-needs", "needs_plugin", "import libfoo_absent\n", "needs"
    )

    failed = {f["entryPoint"]: f["reason"] for f in json.loads(
        _plugins_command(site, "--json").stdout)["failed"]}  # fmt: skip
    assert failed["gone"] == (
        "its entry point gone = 'gone_plugin' names module 'gone_plugin', which is not "
        "installed: fix the entry point or install it"
    )
    assert failed["needs"] == "ModuleNotFoundError: No module named 'libfoo_absent'"
