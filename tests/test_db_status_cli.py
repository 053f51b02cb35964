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


async def _status(db) -> dict:
    response = await db.client.get(f"/preview/status/{db.project}", headers=AUTH)
    return (await response.json())["data"]


async def test_status_is_ready_again_once_an_applied_definition_is_used_again(db):
    await db.ok("list")
    retyped = {
        **ORDERS,
        "fields": [
            {**field, "type": "integer"} if field["name"] == "title" else field
            for field in ORDERS["fields"]
        ],
    }
    status, body = await db.call("list", data_source=retyped)
    assert (status, body["error"]["code"]) == (409, "MIGRATION_BLOCKED")
    assert (await _status(db))["status"] == "blocked"

    await db.ok("list")  # the definition applied before, known to this process

    again = await _status(db)
    assert again["status"] == "ready"
    assert again["lastError"] and body["error"]["message"].startswith(
        again["lastError"]
    )
    await db.ok("list")
    assert (await _status(db))["status"] == "ready"


async def test_status_needs_the_token(db):
    response = await db.client.get(f"/preview/status/{db.project}")
    assert response.status == 401


@pytest.mark.parametrize(
    ("project", "problem"),
    [
        ("a%00b", "control or bidirectional formatting characters"),
        ("a%0Ab", "control or bidirectional formatting characters"),
        ("a%7Fb", "control or bidirectional formatting characters"),
        ("a%E2%80%AEb", "control or bidirectional formatting characters"),
        ("", "must not be empty or blank"),
    ],
)
async def test_status_of_a_project_id_that_cannot_be_one_is_400(db, project, problem):
    response = await db.client.get(f"/preview/status/{project}", headers=AUTH)
    body = await response.json()

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert problem in body["error"]["message"]


async def test_status_of_a_project_id_that_is_not_utf8_is_400(db):
    response = await db.client.get("/preview/status/qa-%FF", headers=AUTH)
    body = await response.json()

    assert response.status == 400, body
    assert body["error"]["details"][0]["path"] == "projectId"


def run_cli(database_url, *args, **variables):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "error",
        **variables,
    }
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


def test_migrate_refuses_a_name_with_a_control_character(
    database_url, project_id, tmp_path
):
    definition = tmp_path / "nul.json"
    definition.write_text(json.dumps({**ORDERS, "name": "a\u0000b"}))

    result = run_cli(database_url, "migrate", project_id, str(definition))

    assert result.returncode == 1
    assert "VALIDATION_FAILED" in result.stderr and "control" in result.stderr


def _catalog_and_log(database_url, project_id):
    """The schema, its columns and its log's rows: what a dry run must leave as they were."""
    import psycopg2

    schema = schema_name(project_id)
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY 1, 2",
            (schema,),
        )
        columns = cursor.fetchall()
        cursor.execute("SELECT to_regnamespace(%s) IS NOT NULL", (f'"{schema}"',))
        columns.append(cursor.fetchone())
        cursor.execute(
            "SELECT to_regclass(%s)", (f'"{schema}".__lowcode_migrations_log',)
        )
        log = []
        if cursor.fetchone()[0]:
            cursor.execute(
                f'SELECT * FROM "{schema}".__lowcode_migrations_log ORDER BY id'
            )
            log = cursor.fetchall()
    connection.close()
    return columns, log


def test_a_dry_run_fails_where_applying_fails_and_leaves_nothing(
    database_url, project_id, tmp_path
):
    import psycopg2

    definition = tmp_path / "things.json"
    things = {"type": "db", "name": "things", "table": "things",
              "fields": [{"name": "x", "type": "string"}]}  # fmt: skip
    definition.write_text(json.dumps(things))
    assert run_cli(database_url, "migrate", project_id, str(definition)).returncode == 0
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{schema_name(project_id)}".things (x) VALUES (%s)',
            ("hello",),
        )
    connection.close()

    things["fields"][0]["type"] = "integer"
    definition.write_text(json.dumps(things))
    before = _catalog_and_log(database_url, project_id)
    allow = {"PREVIEW_ALLOW_DESTRUCTIVE_MIGRATIONS": "true"}
    dry = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run",
                  "--json", **allow)  # fmt: skip
    assert dry.returncode == 1, dry.stdout
    dry_report = json.loads(dry.stdout)
    assert dry_report["outcome"] == "failed"
    text = run_cli(
        database_url, "migrate", project_id, str(definition), "--dry-run", **allow
    )
    assert text.returncode == 1
    assert text.stderr.splitlines()[0] == (
        f"-- failed: {schema_name(project_id)} (things), 1 statement would fail; "
        "dry run, nothing changed"
    )
    assert _catalog_and_log(database_url, project_id) == before

    applied = run_cli(
        database_url, "migrate", project_id, str(definition), "--json", **allow
    )
    assert applied.returncode == 1
    report = json.loads(applied.stdout)
    assert report["error"]["code"] == "MIGRATION_FAILED"
    assert dry_report["changes"] == [report["error"]["message"]]
    assert dry_report["statements"] == report["statements"]


def test_a_dry_run_of_a_new_schema_leaves_no_schema(database_url, project_id, tmp_path):
    """Seeds that break a unique index fail only when they run: the dry run runs them too."""
    definition = tmp_path / "things.json"
    things = {"type": "db", "name": "things", "table": "things",
              "fields": [{"name": "x", "type": "string", "unique": True}],
              "seeds": [{"x": "same"}, {"x": "same"}]}  # fmt: skip
    definition.write_text(json.dumps(things))
    seeds = {"PREVIEW_APPLY_SEEDS": "true"}

    dry = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run",
                  "--json", **seeds)  # fmt: skip
    assert dry.returncode == 1, dry.stdout
    assert json.loads(dry.stdout)["outcome"] == "failed"
    assert _catalog_and_log(database_url, project_id) == ([(False,)], [])
    status = run_cli(database_url, "status", project_id, "--json")
    assert json.loads(status.stdout)["status"] == "absent"

    applied = run_cli(
        database_url, "migrate", project_id, str(definition), "--json", **seeds
    )
    assert applied.returncode == 1
    message = json.loads(applied.stdout)["error"]["message"]
    assert message == json.loads(dry.stdout)["changes"][0]
    assert message.endswith(
        "break a unique index': two seeds, or a seed and a row already there, hold the "
        "same value of (x): make the seeds' values distinct"
    ), message


def test_a_dry_run_with_only_seeds_to_insert_says_planned(
    database_url, project_id, tmp_path
):
    definition = tmp_path / "things.json"
    things = {"type": "db", "name": "things", "table": "things",
              "fields": [{"name": "x", "type": "string"}],
              "seeds": [{"x": "a"}, {"x": "b"}]}  # fmt: skip
    definition.write_text(json.dumps(things))
    applied = run_cli(database_url, "migrate", project_id, str(definition), "--json")
    assert json.loads(applied.stdout)["outcome"] == "applied", applied.stdout

    seeds = {"PREVIEW_APPLY_SEEDS": "true"}
    dry = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run",
                  "--json", **seeds)  # fmt: skip
    report = json.loads(dry.stdout)
    assert report["outcome"] == "planned", report
    assert report["changes"] == ["insert the 2 seed row(s) of table things"]
    text = run_cli(
        database_url, "migrate", project_id, str(definition), "--dry-run", **seeds
    )
    assert "nothing to do" not in text.stderr, text.stderr
    assert "--   insert the 2 seed row(s) of table things" in text.stderr, text.stderr

    run_cli(database_url, "migrate", project_id, str(definition), "--json", **seeds)
    again = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run",
                    "--json", **seeds)  # fmt: skip
    assert json.loads(again.stdout)["outcome"] == "unchanged", again.stdout


def test_a_dry_run_with_seeds_takes_no_id_from_the_table(
    database_url, project_id, tmp_path
):
    """Seeds inserted and rolled back moved the id sequence, which no rollback takes back:
    the next create skipped to the seed's id, and a seed id near 2^63 used the table up."""
    import psycopg2

    definition = tmp_path / "s.json"
    plain = {"type": "db", "name": "s", "table": "s",
             "fields": [{"name": "t", "type": "string"}]}  # fmt: skip
    definition.write_text(json.dumps(plain))
    assert run_cli(database_url, "migrate", project_id, str(definition)).returncode == 0

    seeded = {**plain, "seeds": [{"id": 2**63 - 2, "t": "seed"}, {"t": "no id"}]}
    definition.write_text(json.dumps(seeded))
    dry = run_cli(database_url, "migrate", project_id, str(definition), "--dry-run",
                  "--json", PREVIEW_APPLY_SEEDS="true")  # fmt: skip
    assert json.loads(dry.stdout)["outcome"] == "planned", dry.stdout

    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            f'SELECT last_value, is_called FROM "{schema_name(project_id)}".s_id_seq'
        )
        assert cursor.fetchone() == (1, False)  # never used
    connection.close()


def test_the_text_output_names_seeds_beside_statements(
    database_url, project_id, tmp_path
):
    """Only --json listed them when the migration also had statements."""
    definition = tmp_path / "s.json"
    seeded = {"type": "db", "name": "s", "table": "s",
              "fields": [{"name": "t", "type": "string"}],
              "seeds": [{"t": "a"}, {"t": "b"}]}  # fmt: skip
    definition.write_text(json.dumps(seeded))
    seeds = {"PREVIEW_APPLY_SEEDS": "true"}

    dry = run_cli(
        database_url, "migrate", project_id, str(definition), "--dry-run", **seeds
    )
    assert dry.returncode == 0, dry.stderr
    assert "--   insert the 2 seed row(s) of table s" in dry.stderr.splitlines(), (
        dry.stderr
    )

    applied = run_cli(database_url, "migrate", project_id, str(definition), **seeds)
    assert applied.returncode == 0, applied.stderr
    assert applied.stderr.rstrip().endswith(
        f"-- applied: {schema_name(project_id)} (s), 2 seed row(s) inserted"
    ), applied.stderr
