"""``GET /preview/status/{projectId}`` (6.5) and the ``migrate`` / ``status`` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lowcode_db.tenancy import schema_name
from tests.conftest import AUTH
from tests.fixtures.database import ORDERS


async def test_status_absent_then_ready(db):
    response = await db.client.get(f"/preview/status/{db.project}", headers=AUTH)
    body = await response.json()
    assert response.status == 200
    assert body["ok"] is True
    assert body["data"] == {
        "status": "absent",
        "lastAppliedAt": None,
        "lastError": None,
    }
    assert "traceId" in body["meta"]

    await db.ok("list")
    body = await (
        await db.client.get(f"/preview/status/{db.project}", headers=AUTH)
    ).json()
    assert body["data"]["status"] == "ready"
    assert body["data"]["lastAppliedAt"].endswith("+00:00")
    assert body["data"]["lastError"] is None


async def test_status_needs_the_token(db):
    response = await db.client.get(f"/preview/status/{db.project}")
    assert response.status == 401


@pytest.mark.parametrize("project", ["a%00b", "a%0Ab", "a%7Fb"])
async def test_status_of_a_project_id_with_a_control_character_is_400(db, project):
    response = await db.client.get(f"/preview/status/{project}", headers=AUTH)
    body = await response.json()

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert "control characters" in body["error"]["message"]


def run_cli(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "error"}
    return subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_migrate_dry_run_then_apply_then_status(database_url, project_id, tmp_path):
    definition = tmp_path / "orders.json"
    definition.write_text(json.dumps(ORDERS))

    dry = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("CREATE SCHEMA IF NOT EXISTS")
    assert any(line.startswith("CREATE TABLE IF NOT EXISTS") for line in lines)
    assert dry.stderr.splitlines()[-1] == (
        f"-- planned: {schema_name(project_id)} (orders), {len(lines)} statements; "
        "dry run, nothing changed"
    )
    planned = run_cli(
        database_url, "migrate", project_id, str(definition), "--dry-run", "--json"
    )
    assert planned.returncode == 0, planned.stderr
    report = json.loads(planned.stdout)
    assert (report["dryRun"], report["outcome"]) == (True, "planned")
    assert report["statements"] == lines
    status = run_cli(database_url, "status", project_id, "--json")
    assert json.loads(status.stdout)["status"] == "absent"

    applied = run_cli(database_url, "migrate", project_id, str(definition), "--json")
    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)
    assert report["outcome"] == "applied"
    assert report["statements"][1:] == lines[1:]

    again = run_cli(database_url, "migrate", project_id, str(definition), "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["outcome"] == "unchanged"
    again_dry = run_cli(
        database_url, "migrate", project_id, str(definition), "--dry-run", "--json"
    )
    assert again_dry.returncode == 0
    assert json.loads(again_dry.stdout)["outcome"] == "unchanged"
    text = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run")
    assert text.stdout == ""
    assert text.stderr.splitlines()[-1] == (
        f"-- unchanged: {schema_name(project_id)} (orders), nothing to do; "
        "dry run, nothing changed"
    )

    status = run_cli(database_url, "status", project_id, "--json")
    assert json.loads(status.stdout)["status"] == "ready"


def test_migrate_blocked_exits_1(database_url, project_id, tmp_path):
    definition = tmp_path / "orders.json"
    definition.write_text(json.dumps(ORDERS))
    assert run_cli(database_url, "migrate", project_id, str(definition)).returncode == 0

    changed = json.loads(json.dumps(ORDERS))
    changed["fields"][1]["type"] = "integer"
    definition.write_text(json.dumps(changed))
    dry = run_cli(
        database_url, "migrate", project_id, str(definition), "--dry-run", "--json"
    )
    assert dry.returncode == 1
    assert json.loads(dry.stdout)["outcome"] == "blocked"
    text = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run")
    assert text.returncode == 1
    assert text.stderr.splitlines()[0] == (
        f"-- blocked: {schema_name(project_id)} (orders), 1 statement would be blocked; "
        "dry run, nothing changed"
    )
    assert "--   change the type of orders.amount" in text.stderr

    blocked = run_cli(database_url, "migrate", project_id, str(definition), "--json")
    assert blocked.returncode == 1
    report = json.loads(blocked.stdout)
    assert report["error"]["code"] == "MIGRATION_BLOCKED"
    assert any("ALTER COLUMN" in s for s in report["statements"])
    status = json.loads(run_cli(database_url, "status", project_id, "--json").stdout)
    assert status["status"] == "blocked"


def test_migrate_rejects_a_bad_definition(database_url, project_id, tmp_path):
    definition = tmp_path / "bad.json"
    definition.write_text(json.dumps({"type": "db", "name": "x", "table": "Bad Name"}))
    result = run_cli(database_url, "migrate", project_id, str(definition))
    assert result.returncode == 1
    assert "VALIDATION_FAILED" in result.stderr
