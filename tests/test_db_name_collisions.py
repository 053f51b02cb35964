"""Names of one preview schema held by another relation: a dataSource's ``table`` that names an
index, a sequence or a view, and an explicit index name that the same migration's own objects
take (the table, ``<table>_pkey``, ``<table>_id_seq``), are MIGRATION_FAILED naming both, with
nothing of the migration applied and the failure logged; never a 500 INTERNAL, a misleading
MIGRATION_BLOCKED, or a 200 whose index never exists."""

from __future__ import annotations

import json

import pytest

from lowcode_db.pool import STATEMENTS
from lowcode_db.tenancy import schema_name
from tests.conftest import AUTH
from tests.test_db_migrations import log, query


def source(table, *indexes, id_type=None):
    """A db dataSource of ``table`` with one string field ``x`` and the given indexes."""
    fields = [{"name": "x", "type": "string"}]
    if id_type is not None:
        fields.insert(0, {"name": "id", "type": id_type})
    definition = {"type": "db", "name": table, "table": table, "fields": fields}
    if indexes:
        definition["indexes"] = list(indexes)
    return definition


def relations(database_url, project):
    """Each relation of the project's schema, by name, with its kind."""
    rows = query(
        database_url,
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s",
        (schema_name(project),),
    )
    return dict(rows)


async def status_of(db):
    response = await db.client.get(f"/preview/status/{db.project}", headers=AUTH)
    assert response.status == 200
    return (await response.json())["data"]


async def assert_failed(db, database_url, definition, message):
    """The call is MIGRATION_FAILED with ``message``; nothing of it is in the schema."""
    before = relations(database_url, db.project)
    status, body = await db.call("list", data_source=definition)
    assert status == 500, body
    assert body["error"]["code"] == "MIGRATION_FAILED", body
    assert body["error"]["message"] == message
    assert relations(database_url, db.project) == before
    last = log(database_url, db.project)[-1]
    assert (last[1], last[2], last[4]) == ("failed", message, definition["name"])
    status = await status_of(db)
    assert (status["status"], status["lastError"]) == ("failed", message)
    # Failed again at the next call: the process did not take the definition for applied.
    status, body = await db.call("list", data_source=definition)
    assert (status, body["error"]["message"]) == (500, message)


@pytest.mark.parametrize(
    ("table", "holder"),
    [
        ("g", "an index of table f"),
        ("a_pkey", "the primary key index of table a"),
        ("a_id_seq", "the sequence of a.id"),
    ],
)
async def test_a_table_whose_name_another_relation_holds_fails(
    db, database_url, table, holder
):
    await db.ok("list", data_source=source("a"))
    await db.ok("create", {"values": {"x": "1"}}, data_source=source("a"))
    await db.ok("list", data_source=source("f", {"name": "g", "fields": ["x"]}))

    message = (
        f"table {table}: the name {table} is already used by {holder}; "
        "give the dataSource's table another name"
    )
    await assert_failed(db, database_url, source(table), message)


async def test_a_table_whose_name_a_view_or_a_sequence_holds_fails(db, database_url):
    await db.ok("list", data_source=source("a"))
    schema = schema_name(db.project)
    query(database_url, f'CREATE VIEW "{schema}".v AS SELECT 1 AS x')
    query(database_url, f'CREATE SEQUENCE "{schema}".counter')

    for table, holder in [("v", "a view"), ("counter", "a sequence")]:
        message = (
            f"table {table}: the name {table} is already used by {holder}; "
            "give the dataSource's table another name"
        )
        await assert_failed(db, database_url, source(table), message)


@pytest.mark.parametrize(
    ("definition", "holder"),
    [
        (source("b", {"name": "b_pkey", "fields": ["x"]}),
         "the primary key index of table b, which this migration creates"),
        (source("d", {"name": "d", "fields": ["x"]}),
         "table d itself, which this migration creates"),
        (source("e", {"name": "e_id_seq", "fields": ["x"]}),
         "the sequence of e.id, which this migration creates"),
        (source("u", {"name": "u_pkey", "fields": ["x"], "unique": True}, id_type="uuid"),
         "the primary key index of table u, which this migration creates"),
        (source("t" * 63, {"name": "t" * 58 + "_pkey", "fields": ["x"]}),
         f"the primary key index of table {'t' * 63}, which this migration creates"),
        (source("t" * 63, {"name": "t" * 56 + "_id_seq", "fields": ["x"]}),
         f"the sequence of {'t' * 63}.id, which this migration creates"),
    ],
)  # fmt: skip
async def test_an_index_name_the_new_table_takes_fails(
    db, database_url, definition, holder
):
    await db.ok("list", data_source=source("a"))
    table, (index,) = definition["table"], definition["indexes"]
    kind = "unique index" if index.get("unique") else "index"
    message = (
        f"table {table}: the {kind} name {index['name']} is already used by {holder}; "
        "give the index another name"
    )
    await assert_failed(db, database_url, definition, message)
    assert table not in relations(database_url, db.project)


async def test_a_first_call_failing_so_creates_the_schema_and_logs_it(db, database_url):
    definition = source("d", {"name": "d", "fields": ["x"]})
    status, body = await db.call("list", data_source=definition)
    assert status == 500, body
    assert body["error"]["code"] == "MIGRATION_FAILED"
    assert set(relations(database_url, db.project)) >= {"__lowcode_migrations_log"}
    assert "d" not in relations(database_url, db.project)
    assert log(database_url, db.project)[-1][1] == "failed"


@pytest.mark.parametrize(
    ("name", "holder"),
    [
        ("b", "table b"),
        ("b_pkey", "the primary key index of table b"),
        ("b_id_seq", "the sequence of b.id"),
    ],
)
async def test_an_index_name_the_existing_table_holds_fails(
    db, database_url, name, holder
):
    await db.ok("list", data_source=source("b"))

    definition = source("b", {"name": name, "fields": ["x"]})
    message = (
        f"table b: the index name {name} is already used by {holder}; "
        "give the index another name"
    )
    await assert_failed(db, database_url, definition, message)


async def test_names_that_clash_with_nothing_still_migrate_and_stay_warm(
    db, database_url
):
    """A pkey name picked by PostgreSQL when ``<table>_pkey`` was taken is no clash."""
    await db.ok("list", data_source=source("a", {"name": "h_pkey", "fields": ["x"]}))
    definition = source("h", {"name": "h_x", "fields": ["x"]})
    await db.ok("create", {"values": {"x": "1"}}, data_source=definition)
    assert relations(database_url, db.project)["h_x"] == "i"
    assert "h_pkey1" in relations(database_url, db.project)

    before = STATEMENTS.count
    await db.ok("list", data_source=definition)
    assert STATEMENTS.count - before == 1


async def test_a_dry_run_reports_the_clash_as_failed(db, database_url, tmp_path):
    from tests.test_db_status_cli import run_cli

    await db.ok("list", data_source=source("f", {"name": "g", "fields": ["x"]}))
    for definition, message in [
        (source("g"), "table g: the name g is already used by an index of table f; "
         "give the dataSource's table another name"),
        (source("d", {"name": "d", "fields": ["x"]}),
         "table d: the index name d is already used by table d itself, which this "
         "migration creates; give the index another name"),
    ]:  # fmt: skip
        path = tmp_path / "definition.json"
        path.write_text(json.dumps(definition))
        before = relations(database_url, db.project)
        entries = len(log(database_url, db.project))

        dry = run_cli(
            database_url, "migrate", db.project, str(path), "--dry-run", "--json"
        )
        assert dry.returncode == 1, dry.stderr
        report = json.loads(dry.stdout)
        assert (report["outcome"], report["changes"]) == ("failed", [message])
        assert relations(database_url, db.project) == before
        assert len(log(database_url, db.project)) == entries
