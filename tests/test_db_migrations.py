"""Migrations of 6.2-6.4: computed from the catalog, applied once under a lock, logged; the warm
path sends one statement; destructive changes blocked or attempted; seeds applied once."""

from __future__ import annotations

import asyncio
import copy

import psycopg2
import pytest

from lowcode_db.pool import STATEMENTS
from lowcode_db.tenancy import schema_name
from tests.fixtures.database import ORDERS


def query(database_url, text, params=()):
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(text, params)
        return cursor.fetchall() if cursor.description else None


def columns(database_url, project, table="orders"):
    rows = query(
        database_url,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        (schema_name(project), table),
    )
    return {name: (kind, nullable == "NO") for name, kind, nullable in rows}


def log(database_url, project):
    return query(
        database_url,
        f'SELECT statement, outcome, error, checksum, data_source FROM "{schema_name(project)}"'
        '."__lowcode_migrations_log" ORDER BY id',
    )


def with_fields(*extra, drop=()):
    definition = copy.deepcopy(ORDERS)
    definition["fields"] = [f for f in definition["fields"] if f["name"] not in drop]
    definition["fields"] += list(extra)
    return definition


async def test_first_call_migrates_and_logs_each_statement(db, database_url):
    await db.ok("list")

    rows = log(database_url, db.project)
    statements = [r[0] for r in rows]
    assert statements[0].startswith(
        f'CREATE SCHEMA IF NOT EXISTS "{schema_name(db.project)}"'
    )
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS") for s in statements)
    assert sum(s.startswith("CREATE INDEX IF NOT EXISTS") for s in statements) == 1
    assert (
        sum(s.startswith("CREATE UNIQUE INDEX IF NOT EXISTS") for s in statements) == 1
    )
    assert {r[1] for r in rows} == {"applied"}
    assert {r[4] for r in rows} == {"orders"}
    assert len({r[3] for r in rows}) == 1
    assert all(f'"{schema_name(db.project)}"' in s for s in statements)
    assert columns(database_url, db.project)["title"] == ("character varying", True)


async def test_warm_calls_send_one_statement(db):
    await db.ok("create", {"values": {"title": "warm"}})

    for operation, params in [
        (
            "list",
            {"withTotal": True, "filter": {"or": [{"title": "warm"}, {"status": "x"}]}},
        ),
        ("list", {}),
        ("get", {"id": 1}),
        ("create", {"values": {"title": "second"}}),
        ("update", {"id": 1, "values": {"status": "paid"}}),
        ("delete", {"id": 2}),
    ]:
        before = STATEMENTS.count
        await db.ok(operation, params)
        assert STATEMENTS.count - before == 1, operation


async def test_another_process_sees_the_logged_checksum_and_runs_no_ddl(
    make_db_client, database_url
):
    first = await make_db_client()
    await first.ok("list")
    entries = len(log(database_url, first.project))

    second = await make_db_client()  # a new app: a process that has not seen it applied
    await second.ok("list")
    assert len(log(database_url, first.project)) == entries
    before = STATEMENTS.count
    await second.ok("list")
    assert STATEMENTS.count - before == 1


async def test_twenty_concurrent_first_calls_migrate_once(make_db_client, database_url):
    clients = [await make_db_client(database_pool_max=5) for _ in range(4)]
    calls = [c.call("create", {"values": {"title": f"c{i}"}})
             for i in range(20) for c in [clients[i % 4]]]  # fmt: skip
    results = await asyncio.gather(*calls)

    assert [status for status, _ in results] == [200] * 20
    statements = [r[0] for r in log(database_url, clients[0].project)]
    assert sum(s.startswith("CREATE TABLE") for s in statements) == 1
    assert len((await clients[0].ok("list"))["data"]) == 20


async def test_added_fields_and_indexes_are_migrated(db, database_url):
    await db.ok("create", {"values": {"title": "old"}})
    changed = with_fields({"name": "note", "type": "text"}, drop=("status",))
    changed["indexes"] = [{"fields": ["note"], "name": "by_note"}]

    row = (await db.ok("create", {"values": {"title": "new", "note": "n"}},
                       data_source=changed))["data"]  # fmt: skip
    assert row["note"] == "n"
    assert "status" not in row
    assert "status" in columns(database_url, db.project)  # dropped fields stay
    statements = [r[0] for r in log(database_url, db.project)]
    assert any("ADD COLUMN IF NOT EXISTS" in s and '"note"' in s for s in statements)
    assert any('"by_note"' in s for s in statements)


async def test_destructive_changes_are_blocked(db, database_url):
    await db.ok("create", {"values": {"title": "has rows"}})
    changed = with_fields({"name": "code", "type": "string", "required": True})
    for field in changed["fields"]:
        if field["name"] == "amount":
            field["type"] = "integer"
        if field["name"] == "status":
            field["required"] = True

    status, body = await db.call("list", data_source=changed)
    assert status == 409
    assert body["error"]["code"] == "MIGRATION_BLOCKED"
    changes = " | ".join(d["change"] for d in body["error"]["details"])
    assert len(body["error"]["details"]) == 3
    assert (
        "orders.code" in changes
        and "orders.amount" in changes
        and "orders.status" in changes
    )

    cols = columns(database_url, db.project)
    assert "code" not in cols
    assert cols["amount"] == ("numeric", False)
    assert cols["status"][1] is False
    assert {r[1] for r in log(database_url, db.project)[-3:]} == {"blocked"}

    status_body = await (
        await db.client.get(f"/preview/status/{db.project}", headers=AUTH)
    ).json()
    assert status_body["data"]["status"] == "blocked"
    assert "orders.code" in status_body["data"]["lastError"]

    assert (await db.ok("list"))["data"][0][
        "title"
    ] == "has rows"  # old definition still works


async def test_required_field_on_an_empty_table_is_not_destructive(db, database_url):
    await db.ok("list")
    changed = with_fields({"name": "code", "type": "string", "required": True})
    await db.ok("list", data_source=changed)
    assert columns(database_url, db.project)["code"] == ("character varying", True)


async def test_allowed_destructive_change_that_postgres_rejects_fails_cleanly(
    make_db_client, database_url
):
    db = await make_db_client(allow_destructive_migrations=True)
    await db.ok("create", {"values": {"title": "x", "status": "not a number"}})
    changed = with_fields({"name": "extra", "type": "text"})
    for field in changed["fields"]:
        if field["name"] == "status":
            field.update(type="integer", default=0)

    status, body = await db.call("list", data_source=changed)
    assert status == 500
    assert body["error"]["code"] == "MIGRATION_FAILED"
    assert "not a number" not in str(body)
    cols = columns(database_url, db.project)
    assert "extra" not in cols
    assert cols["status"] == ("character varying", False)
    assert log(database_url, db.project)[-1][1] == "failed"
    assert (await db.ok("list"))["data"][0]["status"] == "not a number"


async def test_allowed_destructive_changes_are_applied(make_db_client, database_url):
    db = await make_db_client(allow_destructive_migrations=True)
    await db.ok("create", {"values": {"title": "x", "amount": "2"}})
    changed = with_fields()
    for field in changed["fields"]:
        if field["name"] == "amount":
            field.update(type="integer", required=True)

    row = (await db.ok("list", data_source=changed))["data"][0]
    assert row["amount"] == 2
    assert columns(database_url, db.project)["amount"] == ("bigint", True)


def amount_as(kind: str) -> dict:
    changed = with_fields()
    for field in changed["fields"]:
        if field["name"] == "amount":
            field.update(type=kind)
    return changed


async def test_a_definition_known_before_its_table_changed_is_planned_again(
    make_db_client, database_url
):
    """The table changed by another definition: the first one's next call migrates it back,
    and its answers follow its own types again."""
    db = await make_db_client(allow_destructive_migrations=True)
    await db.ok("create", {"values": {"title": "x", "amount": "2"}})
    await db.ok(
        "create",
        {"values": {"title": "y", "amount": 3}},
        data_source=amount_as("integer"),
    )
    assert columns(database_url, db.project)["amount"][0] == "bigint"

    row = (await db.ok("create", {"values": {"title": "z", "amount": "4.5"}}))["data"]

    assert row["amount"] == "4.5"  # numeric again, as the first definition says
    assert columns(database_url, db.project)["amount"][0] == "numeric"


async def test_a_table_changed_by_another_process_is_blocked_not_answered_500(
    make_db_client,
):
    db = await make_db_client()
    changer = await make_db_client(allow_destructive_migrations=True)  # another process
    await db.ok("list")
    title_as_integer = with_fields()
    for field in title_as_integer["fields"]:
        if field["name"] == "title":
            field.update(type="integer")
    await changer.ok("list", data_source=title_as_integer)

    status, body = await db.call("create", {"values": {"title": "x"}})

    # The insert fails on the changed column; the migration back is destructive.
    assert status == 409, body
    assert body["error"]["code"] == "MIGRATION_BLOCKED"
    assert "orders.title" in body["error"]["message"]


async def test_a_table_dropped_behind_the_service_is_created_again(db, database_url):
    await db.ok("create", {"values": {"title": "gone soon"}})
    query(database_url, f'DROP TABLE "{schema_name(db.project)}".orders')

    assert (await db.ok("list"))["data"] == []
    await db.ok("create", {"values": {"title": "back"}})


async def test_unique_index_over_duplicates_fails_and_leaves_nothing(db, database_url):
    await db.ok("create", {"values": {"title": "a", "status": "dup-secret"}})
    await db.ok("create", {"values": {"title": "b", "status": "dup-secret"}})
    changed = with_fields({"name": "extra", "type": "text"})
    changed["indexes"].append(
        {"fields": ["status"], "unique": True, "name": "one_status"}
    )

    status, body = await db.call("list", data_source=changed)
    assert status == 500
    assert body["error"]["code"] == "MIGRATION_FAILED"
    assert (
        "orders" in body["error"]["message"]
        and "one_status" in body["error"]["message"]
    )
    assert "dup-secret" not in str(body)
    assert "extra" not in columns(database_url, db.project)


SEEDED = {
    **ORDERS,
    "indexes": [],
    "seeds": [{"title": "First", "amount": "9.90"}, {"id": 100, "title": "Hundred"}],
}


async def test_seeds_are_applied_once_per_set(make_db_client, database_url):
    db = await make_db_client(apply_seeds=True)
    rows = (await db.ok("list", data_source=SEEDED))["data"]
    assert sorted(r["title"] for r in rows) == ["First", "Hundred"]

    again = await make_db_client(apply_seeds=True)  # another process, same set
    assert len((await again.ok("list", data_source=SEEDED))["data"]) == 2

    changed = {**SEEDED, "seeds": [*SEEDED["seeds"], {"title": "Third"}]}
    titles = sorted(
        r["title"] for r in (await again.ok("list", data_source=changed))["data"]
    )
    assert titles == [
        "First",
        "First",
        "Hundred",
        "Third",
    ]  # rows with an id are not repeated
    log_rows = query(
        database_url,
        f'SELECT table_name, rows_inserted FROM "{schema_name(db.project)}".__lowcode_seeds_log '
        "ORDER BY id",
    )
    assert log_rows == [("orders", 2), ("orders", 2)]

    created = await again.ok(
        "create", {"values": {"title": "after"}}, data_source=changed
    )
    assert created["data"]["id"] > 100


async def test_bad_seeds_are_validation_failed(make_db_client):
    db = await make_db_client(apply_seeds=True)
    bad = {**ORDERS, "seeds": [{"title": "ok"}, {"amount": "x"}]}
    status, body = await db.call("list", data_source=bad)
    assert status == 400
    paths = {d["path"] for d in body["error"]["details"]}
    assert paths == {"dataSource.seeds.1.amount", "dataSource.seeds.1.title"}


async def test_a_migration_failing_on_its_seeds_alone_is_logged_and_in_the_status(
    make_db_client, database_url
):
    """Seeds have no statement of their own: the failure wrote no log row, and the status
    said ready with no error."""
    db = await make_db_client(apply_seeds=True)
    cats = {"type": "db", "name": "cats", "table": "cats",
            "fields": [{"name": "name", "type": "string", "unique": True}],
            "seeds": [{"name": "a"}]}  # fmt: skip
    await db.ok("list", data_source=cats)
    clashing = {**cats, "seeds": [{"name": "a"}, {"name": "b"}]}
    status, body = await db.call("list", data_source=clashing)
    assert status == 500, body
    assert body["error"]["code"] == "MIGRATION_FAILED"

    last = log(database_url, db.project)[-1]
    assert last[1] == "failed", last
    status_body = await (
        await db.client.get(f"/preview/status/{db.project}", headers=AUTH)
    ).json()
    assert status_body["data"]["status"] == "failed", status_body
    assert status_body["data"]["lastError"] == body["error"]["message"]


async def test_a_seed_id_leaves_room_for_the_ids_of_new_rows(make_db_client):
    """The identity moves past the largest seed id: at 2^63-1 every create would fail."""
    db = await make_db_client(apply_seeds=True)
    largest = 2**63 - 1
    full = {**ORDERS, "seeds": [{"id": largest, "title": "last"}]}
    status, body = await db.call("list", data_source=full)
    assert status == 400, body
    assert body["error"]["details"] == [
        {"path": "dataSource.seeds.0.id",
         "message": f"a seed's integer id is at most {largest - 1}, so that new rows have ids "
                    "after it"}
    ]  # fmt: skip

    room = {**ORDERS, "seeds": [{"id": largest - 1, "title": "last"}]}
    created = await db.ok("create", {"values": {"title": "new"}}, data_source=room)
    assert created["data"]["id"] == str(largest)


@pytest.mark.parametrize("apply_seeds", [False, True])
async def test_bad_seeds_are_refused_whatever_the_flag(
    make_db_client, database_url, apply_seeds
):
    """Bad input gets its code even where it would not be used; nothing is migrated."""
    db = await make_db_client(apply_seeds=apply_seeds)
    bad = {**ORDERS, "seeds": [{"title": "ok", "nope": 1}, "x", {"title": 5}]}
    status, body = await db.call("list", data_source=bad)
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert [d["path"] for d in body["error"]["details"]] == [
        "dataSource.seeds.0.nope",
        "dataSource.seeds.1",
        "dataSource.seeds.2.title",
    ]
    schemas = query(
        database_url,
        "SELECT count(*) FROM pg_namespace WHERE nspname = %s",
        (schema_name(db.project),),
    )
    assert schemas == [(0,)]


async def test_seeds_are_checked_when_a_definition_is_first_seen_only(
    make_db_client, monkeypatch
):
    """Definitions are cached per process: a warm call checks no seed again."""
    from lowcode_db import schema

    checked = []
    check = schema.load_seed_rows

    def counting(*args, **kwargs):
        checked.append(1)
        return check(*args, **kwargs)

    monkeypatch.setattr(schema, "load_seed_rows", counting)
    db = await make_db_client()
    for _ in range(3):
        await db.ok("list", data_source=SEEDED)
    assert len(checked) == 1


async def test_seeds_are_never_applied_while_the_flag_is_false(db, database_url):
    assert (await db.ok("list", data_source=SEEDED))["data"] == []
    count = query(
        database_url,
        f'SELECT count(*) FROM "{schema_name(db.project)}".__lowcode_seeds_log',
    )
    assert count == [(0,)]


@pytest.fixture
def hooks_seen():
    return []


async def test_migration_hook_and_metric(
    make_client, database_url, project_id, hooks_seen
):
    from lowcode_runtime import hookimpl
    from lowcode_runtime.metrics import MIGRATIONS

    class Recorder:
        @hookimpl
        def migration_applied(self, project_id, data_source, statements, outcome):
            hooks_seen.append((project_id, data_source, outcome, len(statements)))

    client = await make_client(
        database_url=database_url, extra_plugins=(("rec", Recorder()),)
    )
    before = MIGRATIONS.labels(outcome="applied")._value.get()
    response = await client.post(
        f"/v1/projects/{project_id}/datasources/execute",
        json={"dataSource": ORDERS, "operation": "list", "params": {}},
        headers=AUTH,
    )
    assert response.status == 200
    assert hooks_seen and hooks_seen[0][:3] == (project_id, "orders", "applied")
    assert MIGRATIONS.labels(outcome="applied")._value.get() == before + 1


from tests.conftest import AUTH  # noqa: E402


def table_source(table, field, **index):
    """A db dataSource of ``table`` with one string ``field``; ``index`` adds one index."""
    definition = {
        "type": "db",
        "name": table,
        "table": table,
        "fields": [{"name": field, "type": "string", "unique": not index}],
    }
    if index:
        definition["indexes"] = [{"fields": [field], **index}]
    return definition


def indexes_of(database_url, project, table):
    rows = query(
        database_url,
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
        (schema_name(project), table),
    )
    return {name for (name,) in rows}


async def test_generated_index_names_never_collide_across_tables(db, database_url):
    # a_b.c and a.b_c both read "a_b_c" once joined with "_".
    first, second = table_source("a_b", "c"), table_source("a", "b_c")
    await db.ok("create", {"values": {"c": "x"}}, data_source=first)
    await db.ok("create", {"values": {"b_c": "x"}}, data_source=second)

    status, body = await db.call("create", {"values": {"b_c": "x"}}, data_source=second)
    assert status == 409, body
    assert body["error"]["code"] == "CONFLICT"
    assert "(b_c)" in body["error"]["message"]
    status, body = await db.call("create", {"values": {"c": "x"}}, data_source=first)
    assert status == 409, body

    names = indexes_of(database_url, db.project, "a") | indexes_of(
        database_url, db.project, "a_b"
    )
    assert all(len(name) <= 63 for name in names)
    assert any(name.startswith("a_b_c_key_") for name in names)


async def test_an_explicit_index_name_used_by_another_table_fails(db, database_url):
    await db.ok(
        "list", data_source=table_source("first", "f", name="shared", unique=True)
    )

    second = table_source("second", "g", name="shared", unique=True)
    status, body = await db.call("create", {"values": {"g": "x"}}, data_source=second)
    assert status == 500, body
    assert body["error"]["code"] == "MIGRATION_FAILED"
    assert "shared" in body["error"]["message"]
    assert "first" in body["error"]["message"]
    assert log(database_url, db.project)[-1][1] == "failed"
    assert "second" not in {
        name
        for (name,) in query(
            database_url,
            "SELECT tablename FROM pg_tables WHERE schemaname = %s",
            (schema_name(db.project),),
        )
    }


async def test_an_index_of_the_wanted_name_with_other_columns_fails(db, database_url):
    await db.ok("list")
    query(
        database_url,
        f'CREATE INDEX by_note ON "{schema_name(db.project)}".orders (status)',
    )
    changed = with_fields({"name": "note", "type": "text"})
    changed["indexes"] = [{"fields": ["note"], "name": "by_note"}]

    status, body = await db.call("list", data_source=changed)
    assert status == 500, body
    assert body["error"]["code"] == "MIGRATION_FAILED"
    assert "by_note" in body["error"]["message"]


async def test_an_index_of_an_older_name_is_reused(db, database_url):
    """Schemas of older versions hold ``orders_title_key``: no second unique index."""
    await db.ok("create", {"values": {"title": "old"}})
    first = len(log(database_url, db.project))
    schema = schema_name(db.project)
    (current,) = [
        n for n in indexes_of(database_url, db.project, "orders") if "title" in n
    ]
    query(
        database_url, f'ALTER INDEX "{schema}"."{current}" RENAME TO orders_title_key'
    )

    changed = with_fields({"name": "note", "type": "text"})
    await db.ok("list", data_source=changed)
    later = [row[0] for row in log(database_url, db.project)[first:]]
    assert any('"note"' in statement for statement in later)
    assert not any("INDEX" in statement for statement in later)
    names = indexes_of(database_url, db.project, "orders")
    assert [n for n in names if "title" in n] == ["orders_title_key"]

    status, body = await db.call(
        "create", {"values": {"title": "old"}}, data_source=changed
    )
    assert status == 409
    assert "(title)" in body["error"]["message"]


async def test_one_definition_cannot_name_two_indexes_alike(db):
    definition = copy.deepcopy(ORDERS)
    definition["indexes"] = [
        {"fields": ["status"], "name": "twice"},
        {"fields": ["title"], "name": "twice"},
    ]
    status, body = await db.call("list", data_source=definition)
    assert status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert any(
        d["path"] == "dataSource.indexes.1.name" for d in body["error"]["details"]
    )


THING = {"type": "db", "name": "thing", "table": "thing"}
CONVERT = "keep the field's type, or add a field of the new type under another name"


@pytest.mark.parametrize(
    ("before", "rows", "after", "hint"),
    [
        ({"name": "x", "type": "string"}, ["'hello'"], {"name": "x", "type": "integer"},
         "existing values of thing.x cannot be converted to integer: correct or clear "
         f"them first, or {CONVERT}"),
        ({"name": "x", "type": "string"}, ["'nope'"], {"name": "x", "type": "date"},
         "existing values of thing.x cannot be converted to date"),
        ({"name": "x", "type": "string"}, ["'99999999999999999999'"],
         {"name": "x", "type": "integer"},
         "existing values of thing.x are out of range for integer"),
        ({"name": "x", "type": "float", "unique": True}, ["1.2", "1.4"],
         {"name": "x", "type": "integer", "unique": True},
         "existing values of thing.x become duplicates as integer"),
        ({"name": "x", "type": "date"}, ["'2024-01-01'"], {"name": "x", "type": "boolean"},
         f"PostgreSQL cannot convert thing.x to boolean: {CONVERT}"),
        ({"name": "x", "type": "text"}, ["NULL"],
         {"name": "x", "type": "text", "required": True},
         "rows of thing have no value for x: fill them in first, or keep the field optional"),
        (None, ["NULL"], {"name": "x", "type": "text", "required": True},
         "thing has rows, which would have no value for the new required field x: give it "
         "a default, or make it optional"),
    ],
)  # fmt: skip
async def test_a_rejected_destructive_change_says_what_to_do(
    make_db_client, database_url, before, rows, after, hint
):
    db = await make_db_client(allow_destructive_migrations=True)
    old = {
        **THING,
        "fields": [{"name": "y", "type": "text"}, *([before] if before else [])],
    }
    await db.ok("list", data_source=old)
    column = "x" if before else "y"
    for value in rows:
        query(database_url, f'INSERT INTO "{schema_name(db.project)}".thing ({column}) '
                            f"VALUES ({value}) RETURNING id")  # fmt: skip

    new = {**THING, "fields": [{"name": "y", "type": "text"}, after]}
    status, body = await db.call("list", data_source=new)
    assert status == 500, body
    assert body["error"]["code"] == "MIGRATION_FAILED"
    assert hint in body["error"]["message"]
    assert "SQLSTATE" not in body["error"]["message"]
    for value in ("hello", "nope", "99999", "1.2", "2024"):
        assert value not in body["error"]["message"]


async def test_a_field_with_a_default_changes_type_when_its_values_convert(
    make_db_client, database_url
):
    db = await make_db_client(allow_destructive_migrations=True)
    await db.ok("create", {"values": {"title": "x", "status": "7"}})
    changed = with_fields()
    for field in changed["fields"]:
        if field["name"] == "status":
            field.update(type="integer", default=3)

    assert (await db.ok("list", data_source=changed))["data"][0]["status"] == 7
    assert columns(database_url, db.project)["status"] == ("bigint", False)
    created = await db.ok("create", {"values": {"title": "y"}}, data_source=changed)
    assert created["data"]["status"] == 3


async def test_a_changed_default_fills_the_rows_created_after_it(make_db_client):
    db = await make_db_client()
    await db.ok("create", {"values": {"title": "before"}})
    changed = with_fields()
    for field in changed["fields"]:
        if field["name"] == "status":
            field["default"] = "open"
        if field["name"] == "amount":
            del field["default"]

    created = await db.ok("create", {"values": {"title": "after"}}, data_source=changed)
    assert created["data"]["status"] == "open"
    assert created["data"]["amount"] is None
    rows = (await db.ok("list", {"sort": ["id"]}, data_source=changed))["data"]
    assert [row["status"] for row in rows] == ["new", "open"]


async def test_a_process_that_trusts_the_log_still_writes_its_definitions_default(
    make_db_client,
):
    first = await make_db_client()
    before = copy.deepcopy(ORDERS)
    after = with_fields()
    for field in after["fields"]:
        if field["name"] == "status":
            field["default"] = "open"
    await first.ok("create", {"values": {"title": "a"}}, data_source=before)
    await first.ok("create", {"values": {"title": "b"}}, data_source=after)

    # A new process finds the first definition applied in the log and migrates nothing:
    # the column's default is still the second one's.
    second = await make_db_client()
    created = await second.ok("create", {"values": {"title": "c"}}, data_source=before)

    assert created["data"]["status"] == "new"
