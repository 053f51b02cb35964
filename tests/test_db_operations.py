"""Operations of 6.6 against a real PostgreSQL: CRUD, filters, sort, pages, fields, JSON rules."""

from __future__ import annotations

import pytest

from tests.fixtures.database import ORDERS

TYPED = {
    "type": "db",
    "name": "things",
    "table": "things",
    "fields": [
        {"name": "label", "type": "string"},
        {"name": "body", "type": "text"},
        {"name": "count", "type": "integer"},
        {"name": "ratio", "type": "float"},
        {"name": "price", "type": "decimal"},
        {"name": "flag", "type": "boolean"},
        {"name": "day", "type": "date", "default": "now"},
        {"name": "at", "type": "datetime"},
        {"name": "meta", "type": "json"},
        {"name": "ref", "type": "uuid", "default": "uuid"},
    ],
}


def behind_the_service(
    database_url: str, project: str, statement: str, params: tuple = ()
) -> list[tuple]:
    """Run ``statement`` straight on PostgreSQL, ``{schema}`` standing for the project's
    schema: what another client does to a table the service made. Its rows, if any."""
    import psycopg2

    from lowcode_db.tenancy import schema_name

    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement.replace("{schema}", schema_name(project)), params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


async def test_create_get_update_delete(db):
    created = (await db.ok("create", {"values": {"title": "First", "amount": "9.90"}}))[
        "data"
    ]
    assert created["title"] == "First"
    assert created["amount"] == "9.90"
    assert created["status"] == "new"
    assert created["placed_at"].endswith("+00:00")
    row_id = created["id"]

    assert (await db.ok("get", {"id": row_id}))["data"] == created

    updated = (await db.ok("update", {"id": row_id, "values": {"status": "paid"}}))[
        "data"
    ]
    assert updated == {**created, "status": "paid"}

    deleted = await db.ok("delete", {"id": row_id})
    assert deleted["data"] == {"id": row_id, "deleted": True}

    for operation, params in [
        ("get", {"id": row_id}),
        ("update", {"id": row_id, "values": {"status": "x"}}),
        ("delete", {"id": row_id}),
    ]:
        status, body = await db.call(operation, params)
        assert status == 404
        assert body["error"]["code"] == "NOT_FOUND"


async def test_unique_violation_is_conflict(db):
    await db.ok("create", {"values": {"title": "Same"}})
    status, body = await db.call("create", {"values": {"title": "Same"}})
    assert status == 409
    assert body["error"]["code"] == "CONFLICT"
    assert "Same" not in body["error"]["message"]


async def test_values_are_validated_with_paths(db):
    status, body = await db.call(
        "create", {"values": {"amount": "abc", "nope": 1, "status": "x" * 256}}
    )
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    paths = {d["path"] for d in body["error"]["details"]}
    assert paths == {
        "params.values.title", "params.values.amount", "params.values.nope",
        "params.values.status",
    }  # fmt: skip
    assert (await db.ok("list"))["data"] == []


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"count": 2**63}, "count"),
        ({"count": -(2**63) - 1}, "count"),
        ({"count": 1.5}, "count"),
        ({"count": True}, "count"),
        ({"label": "a\u0000b"}, "label"),
        ({"meta": {"k": "a\u0000"}}, "meta"),
        ({"ref": "not-a-uuid"}, "ref"),
        ({"day": "2024-02-30"}, "day"),
        ({"at": "yesterday"}, "at"),
        ({"flag": "true"}, "flag"),
        ({"ratio": "1.5"}, "ratio"),
        ({"price": "NaN"}, "price"),
    ],
)
async def test_wrong_value_types_are_rejected(db, values, path):
    status, body = await db.call("create", {"values": values}, data_source=TYPED)
    assert status == 400, body
    assert [d["path"] for d in body["error"]["details"]] == [f"params.values.{path}"]


async def test_tiny_and_zero_decimals_keep_their_digits_without_an_exponent(db):
    """PostgreSQL's text of a numeric, never ``str(Decimal)``'s ``1E-7`` or ``0E-8``."""
    for given, answered in (("0.0000001", "0.0000001"), ("0.00000000", "0.00000000")):
        created = await db.ok("create", {"values": {"price": given}}, data_source=TYPED)
        row = created["data"]
        assert row["price"] == answered
        got = await db.ok("get", {"id": row["id"]}, data_source=TYPED)
        assert got["data"]["price"] == answered


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662", "\uff11"])
async def test_a_decimal_in_other_digits_is_refused(db, text):
    status, body = await db.call(
        "create", {"values": {"price": text}}, data_source=TYPED
    )
    assert status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert [d["path"] for d in body["error"]["details"]] == ["params.values.price"]


@pytest.mark.parametrize("text", ["0." + "1" * 1200, "1e-100000", "9" * 1001])
async def test_a_decimal_past_the_limits_says_which(db, text):
    status, body = await db.call(
        "create", {"values": {"price": text}}, data_source=TYPED
    )
    assert status == 400, body
    (detail,) = body["error"]["details"]
    assert detail["path"] == "params.values.price"
    assert "more than 1000 digits or an exponent past" in detail["message"]


async def test_json_rules_of_each_type(db):
    values = {
        "label": "x", "body": "long text", "count": 2**53 + 1, "ratio": 0.25,
        "price": "12345678901234567890.123456789", "flag": True, "at": "2024-05-01T12:00:00",
        "meta": {"a": [1, {"b": None}]},
    }  # fmt: skip
    row = (await db.ok("create", {"values": values}, data_source=TYPED))["data"]
    assert row["count"] == str(2**53 + 1)
    assert row["price"] == "12345678901234567890.123456789"
    assert row["ratio"] == 0.25
    assert row["at"] == "2024-05-01T12:00:00+00:00"
    assert len(row["day"]) == 10 and row["day"][4] == "-"
    assert row["meta"] == {"a": [1, {"b": None}]}
    assert len(row["ref"]) == 36

    small = (await db.ok("create", {"values": {"count": 2**53 - 1, "meta": None}},
                         data_source=TYPED))["data"]  # fmt: skip
    assert small["count"] == 2**53 - 1
    assert small["meta"] is None
    found = await db.ok(
        "list", {"filter": {"meta": {"isNull": True}}}, data_source=TYPED
    )
    assert [r["id"] for r in found["data"]] == [small["id"]]

    offset = await db.ok("create", {"values": {"at": "2024-05-01T14:00:00+02:00"}},
                         data_source=TYPED)  # fmt: skip
    assert offset["data"]["at"] == "2024-05-01T12:00:00+00:00"


async def test_non_finite_numbers_in_the_table_become_strings(db, database_url):
    row = (await db.ok("create", {"values": {"label": "n"}}, data_source=TYPED))["data"]
    behind_the_service(
        database_url,
        db.project,
        "UPDATE \"{schema}\".things SET ratio = 'NaN', price = '-Infinity' WHERE id = %s",
        (row["id"],),
    )
    got = (await db.ok("get", {"id": row["id"]}, data_source=TYPED))["data"]
    assert got["ratio"] == "NaN"
    assert got["price"] == "-Infinity"


async def seed_orders(db, titles_and_amounts):
    for title, amount, status in titles_and_amounts:
        await db.ok(
            "create", {"values": {"title": title, "amount": amount, "status": status}}
        )


ROWS = [
    ("apple", "1", "new"), ("Banana", "2", "paid"), ("cherry", "3", "new"),
    ("50% off", "4", "paid"), ("a_b", "5", "void"), ("back\\slash", "6", "new"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"status": "new"}, ["apple", "cherry", "back\\slash"]),
        ({"status": {"eq": "paid"}}, ["Banana", "50% off"]),
        ({"status": {"ne": "new"}}, ["Banana", "50% off", "a_b"]),
        ({"amount": {"lt": 2}}, ["apple"]),
        ({"amount": {"lte": "2"}}, ["apple", "Banana"]),
        ({"amount": {"gt": 5}}, ["back\\slash"]),
        ({"amount": {"gte": 5, "lt": 6}}, ["a_b"]),
        ({"status": {"in": ["void", "paid"]}}, ["Banana", "50% off", "a_b"]),
        ({"status": {"in": []}}, []),
        ({"status": {"notIn": ["new", "paid"]}}, ["a_b"]),
        ({"status": {"notIn": []}}, [t for t, _, _ in ROWS]),
        ({"title": {"contains": "AN"}}, ["Banana"]),
        ({"title": {"contains": "%"}}, ["50% off"]),
        ({"title": {"contains": "_"}}, ["a_b"]),
        ({"title": {"contains": "\\"}}, ["back\\slash"]),
        ({"title": {"startsWith": "b"}}, ["Banana", "back\\slash"]),
        ({"title": {"isNull": True}}, []),
        ({"title": {"isNull": False}}, [t for t, _, _ in ROWS]),
        ({"title": None}, []),
        ({"title": {"ne": None}}, [t for t, _, _ in ROWS]),
        ({"or": [{"status": "void"}, {"title": "apple"}]}, ["apple", "a_b"]),
        ({"status": "new", "or": [{"amount": 1}, {"amount": 3}]}, ["apple", "cherry"]),
        ({"or": []}, []),
    ],
)
async def test_filter_operators(db, filter_, expected):
    await seed_orders(db, ROWS)
    body = await db.ok("list", {"filter": filter_})
    assert [r["title"] for r in body["data"]] == expected


async def test_null_filters_match_null_rows_only(db):
    await db.ok("create", {"values": {"title": "with"}})
    await db.ok("update", {"id": 1, "values": {"status": None}})
    await db.ok("create", {"values": {"title": "other"}})
    assert [
        r["title"] for r in (await db.ok("list", {"filter": {"status": None}}))["data"]
    ] == ["with"]
    assert [
        r["title"]
        for r in (await db.ok("list", {"filter": {"status": {"eq": None}}}))["data"]
    ] == ["with"]
    assert [
        r["title"]
        for r in (await db.ok("list", {"filter": {"status": {"ne": None}}}))["data"]
    ] == ["other"]


@pytest.mark.parametrize(
    ("filter_", "path"),
    [
        ({"nope": 1}, "params.filter.nope"),
        ({"amount": {"lt": None}}, "params.filter.amount.lt"),
        ({"status": {"in": ["a", None]}}, "params.filter.status.in.1"),
        ({"status": {"in": ["a"] * 1001}}, "params.filter.status.in"),
        ({"status": {"like": "x"}}, "params.filter.status.like"),
        ({"amount": {"contains": "1"}}, "params.filter.amount.contains"),
        ({"amount": "x"}, "params.filter.amount"),
        ({"status": ["a"]}, "params.filter.status"),
        ({"or": {"status": "a"}}, "params.filter.or"),
        ({"or": [{"nope": 1}]}, "params.filter.or.0.nope"),
        ({"id": "abc"}, "params.filter.id"),
        ({"title": {"isNull": "yes"}}, "params.filter.title.isNull"),
        ({"title": {}}, "params.filter.title"),
    ],
)
async def test_bad_filters_are_validation_failed(db, filter_, path):
    status, body = await db.call("list", {"filter": filter_})
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert path in [d["path"] for d in body["error"]["details"]]


async def test_sort_pages_and_total(db):
    for i in range(7):
        await db.ok("create", {"values": {"title": f"t{i}", "status": "ab"[i % 2]}})

    seen = []
    for offset in range(0, 7, 3):
        body = await db.ok(
            "list",
            {"sort": ["-status"], "limit": 3, "offset": offset, "withTotal": True},
        )
        seen += [(r["status"], r["id"]) for r in body["data"]]
        assert body["meta"]["page"] == {
            "limit": 3, "offset": offset, "hasMore": offset + 3 < 7, "total": 7,
        }  # fmt: skip
    assert seen == sorted(seen, key=lambda s: (-ord(s[0]), s[1]))
    assert len({s[1] for s in seen}) == 7

    past = await db.ok("list", {"offset": 100, "withTotal": True})
    assert past["data"] == []
    assert past["meta"]["page"]["total"] == 7
    plain = await db.ok("list", {"limit": 7})
    assert plain["meta"]["page"] == {"limit": 7, "offset": 0, "hasMore": False}


async def test_fields_narrow_the_rows(db):
    await db.ok("create", {"values": {"title": "a"}})
    body = await db.ok("list", {"fields": ["title"]})
    assert body["data"] == [{"id": 1, "title": "a"}]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1001},
        {"limit": 0},
        {"limit": "10"},
        {"offset": -1},
        {"offset": 2**63},
        {"sort": ["nope"]},
        {"sort": ["title; DROP TABLE orders"]},
        {"fields": ["nope"]},
        {"fields": ['title" FROM x; --']},
        {"unknown": 1},
    ],
)
async def test_bad_list_params_are_rejected(db, params):
    await db.ok("create", {"values": {"title": "kept"}})
    status, body = await db.call("list", params)
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert len((await db.ok("list"))["data"]) == 1


@pytest.mark.parametrize(
    "definition",
    [
        {"table": "Orders"},
        {"table": "__lowcode_x"},
        {"table": "a" * 64},
        {"table": "orders; DROP SCHEMA public"},
        {"table": "t", "fields": [{"name": "x", "type": "money"}]},
        {"table": "t", "fields": [{"name": "x y", "type": "text"}]},
        {"table": "t", "fields": [{"name": "id", "type": "boolean"}]},
        {"table": "t", "fields": [{"name": "n", "type": "integer", "default": "x"}]},
        {"table": "t", "indexes": [{"fields": ["missing"]}]},
    ],
)
async def test_bad_definitions_are_rejected(db, definition):
    status, body = await db.call(
        "list", data_source={"type": "db", "name": "x", **definition}
    )
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert all(d["path"].startswith("dataSource") for d in body["error"]["details"])


async def test_sql_in_strings_is_only_data(db):
    evil = "'); DROP TABLE orders; --"
    row = (await db.ok("create", {"values": {"title": evil}}))["data"]
    assert row["title"] == evil
    found = await db.ok("list", {"filter": {"title": {"contains": "DROP"}}})
    assert [r["title"] for r in found["data"]] == [evil]


async def test_uuid_and_string_primary_keys(db):
    by_uuid = {
        "type": "db",
        "name": "u",
        "table": "u",
        "fields": [{"name": "id", "type": "uuid"}, {"name": "v", "type": "text"}],
    }
    row = (await db.ok("create", {"values": {"v": "a"}}, data_source=by_uuid))["data"]
    assert len(row["id"]) == 36
    assert (await db.ok("get", {"id": row["id"]}, data_source=by_uuid))["data"] == row
    status, _ = await db.call("get", {"id": "nope"}, data_source=by_uuid)
    assert status == 400
    status, body = await db.call(
        "create", {"values": {"id": row["id"]}}, data_source=by_uuid
    )
    assert status == 400 and "random uuid" in body["error"]["details"][0]["message"]

    by_text = {
        "type": "db",
        "name": "s",
        "table": "s",
        "fields": [{"name": "id", "type": "string"}, {"name": "v", "type": "text"}],
    }
    status, body = await db.call("create", {"values": {"v": "a"}}, data_source=by_text)
    assert status == 400 and body["error"]["details"][0]["path"] == "params.values.id"
    row = await db.ok(
        "create", {"values": {"id": "sku-1", "v": "a"}}, data_source=by_text
    )
    assert row["data"] == {"id": "sku-1", "v": "a"}
    status, body = await db.call(
        "create", {"values": {"id": "sku-1"}}, data_source=by_text
    )
    assert status == 409


async def test_required_values_and_id_changes(db):
    await db.ok("create", {"values": {"title": "a"}})
    status, body = await db.call("update", {"id": 1, "values": {"title": None}})
    assert status == 400
    status, body = await db.call("update", {"id": 1, "values": {"id": 2}})
    assert status == 400
    assert ORDERS["name"] == "orders"


LONE = (
    "a\ud800b"  # a lone UTF-16 surrogate: JSON "\ud800" parses, UTF-8 cannot encode it
)


SURROGATE_CASES = [
    ("create", {"values": {"label": LONE}}, "params.values.label"),
    ("create", {"values": {"body": LONE}}, "params.values.body"),
    ("create", {"values": {"meta": {"k": [LONE]}}}, "params.values.meta"),
    ("create", {"values": {"meta": {LONE: 1}}}, "params.values.meta"),
    ("update", {"id": 1, "values": {"label": LONE}}, "params.values.label"),
    ("list", {"filter": {"label": LONE}}, "params.filter.label"),
    ("list", {"filter": {"label": {"eq": LONE}}}, "params.filter.label.eq"),
    ("list", {"filter": {"body": {"contains": LONE}}}, "params.filter.body.contains"),
    (
        "list",
        {"filter": {"body": {"startsWith": LONE}}},
        "params.filter.body.startsWith",
    ),
    ("list", {"filter": {"label": {"in": ["x", LONE]}}}, "params.filter.label.in.1"),
    ("list", {"filter": {"meta": {"eq": {"k": LONE}}}}, "params.filter.meta.eq"),
]


@pytest.mark.parametrize(("operation", "params", "path"), SURROGATE_CASES)
def test_lone_surrogates_are_validation_failed_with_the_path(operation, params, path):
    """The plugin's own checks, as the handler runs them: not only behind the core's body
    parser, which may refuse such a body first (the route test below)."""
    from lowcode_db.model import build_table
    from lowcode_db.queries import BUILDERS
    from lowcode_db.schema import DefinitionSchema, operation_schemas
    from lowcode_runtime.errors import ValidationFailed

    definition = {k: v for k, v in TYPED.items() if k not in ("type", "name")}
    table = build_table(DefinitionSchema().load(definition))
    loaded = operation_schemas()[operation].load(params)
    with pytest.raises(ValidationFailed) as caught:
        BUILDERS[operation]("preview_x", table, loaded)
    details = caught.value.details
    assert path in [d["path"] for d in details], details
    assert any("surrogate" in d["message"] for d in details)


async def test_lone_surrogates_through_the_route_are_a_client_error(db):
    for operation, params, _ in SURROGATE_CASES:
        status, body = await db.call(operation, params, data_source=TYPED)
        assert status == 400, body
        assert body["error"]["code"] in ("INVALID_JSON", "VALIDATION_FAILED")


def test_value_loaders_reject_lone_surrogates():
    from marshmallow import ValidationError

    from lowcode_db.values import load_value

    for field_type, value in [
        ("string", LONE),
        ("text", "\udfff"),
        ("json", {"k": LONE}),
    ]:
        with pytest.raises(ValidationError, match="surrogate"):
            load_value(field_type, value)


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"withTotal": "yes"}, "params.withTotal"),
        ({"withTotal": 1}, "params.withTotal"),
        ({"limit": "10"}, "params.limit"),
        ({"limit": True}, "params.limit"),
        ({"limit": 10.0}, "params.limit"),
        ({"offset": 1.5}, "params.offset"),
        ({"offset": False}, "params.offset"),
    ],
)
async def test_list_params_of_the_wrong_json_type_are_rejected(db, params, path):
    status, body = await db.call("list", params)
    assert status == 400, body
    assert [d["path"] for d in body["error"]["details"]] == [path]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"fields": [{"name": "x", "type": "text", "required": "yes"}]}, "fields.0.required"),
        ({"fields": [{"name": "x", "type": "text", "unique": 1}]}, "fields.0.unique"),
        ({"fields": [{"name": "x", "type": "text", "unique": "true"}]}, "fields.0.unique"),
        ({"fields": [{"name": "x", "type": "text"}], "indexes": [{"fields": ["x"], "unique": 0}]},
         "indexes.0.unique"),
    ],
)  # fmt: skip
async def test_definition_flags_of_the_wrong_json_type_are_rejected(db, change, path):
    status, body = await db.call(
        "list", data_source={"type": "db", "name": "x", "table": "t", **change}
    )
    assert status == 400, body
    assert [d["path"] for d in body["error"]["details"]] == [f"dataSource.{path}"]


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"count": "10"}, "count"),
        ({"count": "-3"}, "count"),
        ({"count": False}, "count"),
        ({"ratio": True}, "ratio"),
        ({"ratio": "0.5"}, "ratio"),
        ({"flag": 1}, "flag"),
        ({"flag": "false"}, "flag"),
        ({"price": True}, "price"),
    ],
)
async def test_typed_values_refuse_strings_and_booleans(db, values, path):
    status, body = await db.call("create", {"values": values}, data_source=TYPED)
    assert status == 400, body
    assert [d["path"] for d in body["error"]["details"]] == [f"params.values.{path}"]

    status, body = await db.call("list", {"filter": values}, data_source=TYPED)
    assert status == 400, body
    assert [d["path"] for d in body["error"]["details"]] == [f"params.filter.{path}"]


async def test_big_integers_round_trip_as_strings_and_decimals_take_strings(db):
    big = str(2**53 + 1)
    row = (await db.ok("create", {"values": {"count": big, "price": "9.90"}},
                       data_source=TYPED))["data"]  # fmt: skip
    assert row["count"] == big and row["price"] == "9.90"
    found = await db.ok("list", {"filter": {"count": row["count"]}}, data_source=TYPED)
    assert [r["id"] for r in found["data"]] == [row["id"]]


PAIR = {"type": "db", "name": "pairs", "table": "pairs",
        "fields": [{"name": "a", "type": "string"}, {"name": "n", "type": "integer"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "params", "paths"),
    [
        ("list", {"filter": {"zz": 1}, "limit": 0}, {"params.filter.zz", "params.limit"}),
        ("list", {"filter": {"zz": 1}, "offset": -1, "fields": ["nope"]},
         {"params.filter.zz", "params.offset", "params.fields.0"}),
        ("list", {"sort": ["nope"], "limit": 0, "bogus": 1},
         {"params.sort.0", "params.limit", "params.bogus"}),
        ("list", {"sort": ["a", "Bad name", 3], "fields": ["n", "nope"], "withTotal": 1},
         {"params.sort.1", "params.sort.2", "params.fields.1", "params.withTotal"}),
        ("list", {"filter": {"zz": 1, "n": "x", "a": {"lt": None}}, "sort": ["nope"]},
         {"params.filter.zz", "params.filter.n", "params.filter.a.lt", "params.sort.0"}),
        ("get", {"id": "abc", "bogus": 1}, {"params.id", "params.bogus"}),
        ("create", {"values": {"zz": 1, "n": "x"}, "bogus": 1},
         {"params.values.zz", "params.values.n", "params.bogus"}),
        ("update", {"id": "abc", "values": {"zz": 1, "n": "x"}},
         {"params.id", "params.values.zz", "params.values.n"}),
        ("update", {"id": "abc", "values": {"id": 2, "n": "x"}},
         {"params.id", "params.values.id", "params.values.n"}),
        ("update", {"values": {"n": "x"}}, {"params.id", "params.values.n"}),
    ],
)  # fmt: skip
async def test_every_params_violation_is_reported_at_once(db, operation, params, paths):
    status, body = await db.call(operation, params, data_source=PAIR)
    assert status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    details = body["error"]["details"]
    assert {d["path"] for d in details} == paths
    assert len(details) == len(paths), details  # one answer per path, none repeated


async def test_definition_and_params_violations_are_reported_together(db):
    broken = {**PAIR, "table": "Bad"}
    status, body = await db.call(
        "list", {"limit": 0, "filter": {"zz": 1}}, data_source=broken
    )
    assert status == 400, body
    paths = {d["path"] for d in body["error"]["details"]}
    # The table is unknown, so only what needs no table can be checked in params.
    assert paths == {"dataSource.table", "params.limit"}


async def test_an_id_declared_integer_is_the_default_identity(db, database_url):
    """``id: integer`` changes nothing: the same bigint identity as no declaration at all."""

    plain = {
        "type": "db",
        "name": "n",
        "table": "n",
        "fields": [{"name": "v", "type": "text"}],
    }
    declared = {
        **plain,
        "fields": [{"name": "id", "type": "integer"}, *plain["fields"]],
    }
    assert (await db.ok("create", {"values": {"v": "a"}}, data_source=plain))["data"][
        "id"
    ] == 1
    row = (await db.ok("create", {"values": {"v": "b"}}, data_source=declared))["data"]
    assert row == {"id": 2, "v": "b"}
    assert (await db.ok("get", {"id": 2}, data_source=declared))["data"] == row

    status, body = await db.call(
        "create", {"values": {"id": 9, "v": "c"}}, data_source=declared
    )
    assert status == 400, body
    assert body["error"]["details"] == [{"path": "params.values.id",
        "message": "the id is generated (a bigint identity): leave it out"}]  # fmt: skip

    identity = behind_the_service(
        database_url,
        db.project,
        "SELECT data_type, is_identity FROM information_schema.columns "
        "WHERE table_schema = '{schema}' AND table_name = 'n' AND column_name = 'id'",
    )
    assert identity == [("bigint", "YES")]


async def test_an_id_of_another_type_names_the_allowed_ones(db):
    bad = {
        "type": "db",
        "name": "x",
        "table": "x",
        "fields": [{"name": "id", "type": "date"}],
    }
    status, body = await db.call("list", data_source=bad)
    assert status == 400, body
    [detail] = body["error"]["details"]
    assert detail["path"] == "dataSource.fields.0.type"
    assert all(kind in detail["message"] for kind in ("integer", "uuid", "string"))


async def test_the_smallest_64_bit_integer_is_bound_everywhere(db, database_url):
    """-2^63 interpolated before ``::bigint`` read as ``-(2^63::bigint)``, which overflows."""

    smallest = -(2**63)
    for given in (smallest, str(smallest)):
        row = (await db.ok("create", {"values": {"count": given}}, data_source=TYPED))[
            "data"
        ]
        assert row["count"] == str(smallest)
        for op in ("eq", "gte", "lte", "in"):
            operand = [given] if op == "in" else given
            found = await db.ok(
                "list", {"filter": {"count": {op: operand}}}, data_source=TYPED
            )
            assert row["id"] in [r["id"] for r in found["data"]], op
        found = await db.ok(
            "list", {"filter": {"count": {"lt": given}}}, data_source=TYPED
        )
        assert found["data"] == []
        await db.ok(
            "update", {"id": row["id"], "values": {"count": given}}, data_source=TYPED
        )

    behind_the_service(  # a row whose id is the smallest one, to get and delete by it
        database_url,
        db.project,
        'INSERT INTO "{schema}".things (id, count) OVERRIDING SYSTEM VALUE VALUES (%s, 1)',
        (str(smallest),),
    )
    got = await db.ok("get", {"id": str(smallest)}, data_source=TYPED)
    assert got["data"]["id"] == str(smallest)
    deleted = await db.ok("delete", {"id": smallest}, data_source=TYPED)
    assert deleted["data"] == {"id": str(smallest), "deleted": True}


async def test_the_smallest_64_bit_integer_is_a_default(db):
    low = {**PAIR, "fields": [{"name": "n", "type": "integer", "default": -(2**63)}]}
    row = (await db.ok("create", {"values": {}}, data_source=low))["data"]
    assert row["n"] == str(-(2**63))


async def test_a_literal_default_with_a_percent_sign_is_stored_as_written(db):
    """psycopg2 read the ``%`` of a default written into the statement as a placeholder."""
    percent = {
        **PAIR,
        "fields": [
            {"name": "a", "type": "string", "default": "50%"},
            {"name": "b", "type": "text", "default": "100%% sure"},
            {"name": "m", "type": "json", "default": {"k": "%s"}},
        ],
    }
    row = (await db.ok("create", {"values": {}}, data_source=percent))["data"]
    assert (row["a"], row["b"], row["m"]) == ("50%", "100%% sure", {"k": "%s"})

    row = (await db.ok("create", {"values": {"a": "given"}}, data_source=percent))[
        "data"
    ]
    assert (row["a"], row["b"]) == ("given", "100%% sure")


async def test_a_warm_create_with_a_given_string_id_binds_the_defaults_left_out(db):
    """The warm path binds the defaults again, where the id is among the values."""
    keyed = {
        **PAIR,
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "a", "type": "string", "default": "x"},
            {"name": "n", "type": "integer"},
        ],
    }
    for key in ("k1", "k2"):
        row = await db.ok("create", {"values": {"id": key, "n": 1}}, data_source=keyed)
        assert row["data"] == {"id": key, "a": "x", "n": 1}


async def test_defaults_python_reads_and_postgresql_would_not_are_given_canonically(db):
    """A urn uuid and an offset past 15:59 migrate as the same value in PostgreSQL's form."""
    odd = {
        **PAIR,
        "fields": [
            {"name": "u", "type": "uuid",
             "default": "urn:uuid:12345678-1234-5678-1234-567812345678"},
            {"name": "at", "type": "datetime", "default": "2024-01-02T03:04:05+23:59"},
        ],
    }  # fmt: skip
    row = (await db.ok("create", {"values": {}}, data_source=odd))["data"]
    assert row["u"] == "12345678-1234-5678-1234-567812345678"
    assert row["at"] == "2024-01-01T03:05:05+00:00"

    found = await db.ok(
        "list", {"filter": {"at": {"eq": "2024-01-02T03:04:05+23:59"}}}, data_source=odd
    )
    assert [r["id"] for r in found["data"]] == [row["id"]]


async def test_a_value_postgresql_finds_out_of_range_is_named_when_it_can_be(
    db, database_url
):
    """A column narrowed behind the service: the one value written is the one refused."""

    await db.ok("list", data_source=PAIR)
    behind_the_service(
        database_url, db.project, 'ALTER TABLE "{schema}".pairs ALTER n TYPE integer'
    )

    status, body = await db.call("create", {"values": {"n": 2**40}}, data_source=PAIR)
    assert status == 400, body
    assert body["error"]["details"] == [
        {"path": "params.values.n",
         "message": "PostgreSQL rejected this value of pairs as out of range"}
    ]  # fmt: skip
    status, body = await db.call(
        "create", {"values": {"n": 2**40, "a": "x"}}, data_source=PAIR
    )
    assert status == 400, body
    assert "details" not in body["error"] or not body["error"]["details"]
    assert (
        body["error"]["message"]
        == "PostgreSQL rejected a value of pairs as out of range"
    )


async def test_a_field_named_or_is_filtered_by_any_condition_but_a_list(db):
    """``or`` with a list is the OR of filters; with any other value, the field's condition."""
    fields = [{"name": "or", "type": "string"}, {"name": "n", "type": "integer"}]
    named_or = {"type": "db", "name": "choices", "table": "choices", "fields": fields}
    for values in ({"or": "x", "n": 1}, {"or": "y", "n": 2}, {"n": 3}):
        await db.ok("create", {"values": values}, data_source=named_or)

    async def picked(filter_):
        rows = await db.ok(
            "list", {"filter": filter_, "sort": ["n"]}, data_source=named_or
        )
        return [row["n"] for row in rows["data"]]

    assert await picked({"or": "x"}) == [1]
    assert await picked({"or": {"ne": "x"}}) == [2, 3]
    assert await picked({"or": None}) == [3]
    assert await picked({"or": [{"n": 1}, {"or": "y"}]}) == [1, 2]
    assert await picked({"or": [{"or": {"startsWith": "y"}}, {"n": {"gt": 2}}]}) == [
        2,
        3,
    ]


async def test_dates_and_times_python_cannot_hold_are_answered_not_fatal(
    db, database_url
):
    """Rows written behind the service (or by a type change) with an infinity, a year past
    9999 or one before Christ: every read of the table used to answer INTERNAL."""

    await db.ok("list", data_source=TYPED)
    behind_the_service(
        database_url,
        db.project,
        'INSERT INTO "{schema}".things (label, day, at) VALUES '
        "('inf', 'infinity', 'infinity'), ('far', '10000-01-01', '10000-01-01T00:00Z'), "
        "('bc', '0044-03-15 BC', '0044-03-15 12:00+00 BC')",
    )

    rows = (await db.ok("list", {"sort": ["id"]}, data_source=TYPED))["data"]
    assert [(r["label"], r["day"], r["at"]) for r in rows] == [
        ("inf", "Infinity", "Infinity"),
        ("far", "+10000-01-01", "+10000-01-01T00:00:00+00:00"),
        ("bc", "-0043-03-15", "-0043-03-15T12:00:00+00:00"),
    ]
    one = await db.ok("get", {"id": rows[1]["id"]}, data_source=TYPED)
    assert one["data"]["at"] == "+10000-01-01T00:00:00+00:00"


@pytest.mark.parametrize("name", ["ctid", "xmin", "cmin", "xmax", "cmax", "tableoid"])
async def test_a_field_named_as_a_system_column_is_refused_before_any_migration(
    db, database_url, name
):
    clashing = {
        **PAIR,
        "fields": [{"name": "a", "type": "string"}, {"name": name, "type": "text"}],
    }
    status, body = await db.call("list", data_source=clashing)
    assert status == 400, body
    assert body["error"]["details"] == [
        {"path": "dataSource.fields.1.name",
         "message": f"{name} is a system column of every PostgreSQL table: choose another name"}
    ]  # fmt: skip
    tables = behind_the_service(
        database_url,
        db.project,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}'",
    )
    assert tables == [(0,)]


async def test_a_negative_zero_float_keeps_its_sign(db):
    """psycopg2 wrote it as the numeric constant -0.0, which PostgreSQL reads as 0."""
    row = (await db.ok("create", {"values": {"ratio": -0.0}}, data_source=TYPED))[
        "data"
    ]
    assert str(row["ratio"]) == "-0.0"
    again = await db.ok(
        "update", {"id": row["id"], "values": {"ratio": -0.0}}, data_source=TYPED
    )
    assert str(again["data"]["ratio"]) == "-0.0"


async def test_a_table_out_of_ids_says_so_and_blames_no_value(db, database_url):
    """PostgreSQL's 2200H is of class 22, the class of bad values: it named the caller's."""
    await db.ok("list", data_source=PAIR)
    behind_the_service(
        database_url,
        db.project,
        "SELECT setval('\"{schema}\".pairs_id_seq', 9223372036854775807)",
    )
    for values in ({"a": "x"}, {}, {"a": "x", "n": 1}):
        status, body = await db.call("create", {"values": values}, data_source=PAIR)
        assert status == 409, body
        assert body["error"] == {
            "code": "CONFLICT",
            "message": "table pairs has no id left for a new row: its id sequence reached "
            "the largest bigint",
        }


async def test_a_json_field_answers_a_large_integer_as_it_was_given(db):
    """The integer-as-string rule is for ``integer`` fields: a json value reads back as sent
    and as a filter finds it, at its top level as inside."""
    holder = {**PAIR, "fields": [{"name": "j", "type": "json"}]}
    large = 2**53 + 1
    for given in (large, [large], {"k": large}, 2**70, -(2**70)):
        row = (await db.ok("create", {"values": {"j": given}}, data_source=holder))[
            "data"
        ]
        assert row["j"] == given
        again = await db.ok("get", {"id": row["id"]}, data_source=holder)
        assert again["data"]["j"] == given

    found = await db.ok("list", {"filter": {"j": {"eq": large}}}, data_source=holder)
    assert [r["j"] for r in found["data"]] == [large]


async def test_a_value_too_large_for_an_index_is_the_callers_not_the_databases(db):
    """PostgreSQL's index row limit is an ``OperationalError`` in psycopg2, as a lost
    connection is: it was answered DB_UNAVAILABLE and emptied the pool."""
    import random
    import string

    indexed = {
        **PAIR,
        "fields": [
            {"name": "t", "type": "text"},
            {"name": "u", "type": "text", "unique": True},
            {"name": "v", "type": "text"},
        ],
        "indexes": [{"fields": ["t"]}],
    }
    large = "".join(random.choices(string.ascii_letters, k=20_000))  # past compression
    row = (await db.ok("create", {"values": {"t": "small"}}, data_source=indexed))[
        "data"
    ]

    for operation, params in [
        ("create", {"values": {"t": large}}),
        ("update", {"id": row["id"], "values": {"t": large}}),
        (
            "create",
            {"values": {"t": large, "u": "short", "v": large}},
        ),  # v: not indexed
        ("update", {"id": row["id"], "values": {"t": large, "u": "short"}}),
    ]:
        status, body = await db.call(operation, params, data_source=indexed)
        assert status == 400, body
        assert body["error"]["details"] == [
            {"path": "params.values.t",
             "message": "PostgreSQL rejected this value of pairs as too large for an index "
                        "of its table"}
        ]  # fmt: skip

    listed = await db.ok("list", data_source=indexed)
    assert [r["t"] for r in listed["data"]] == ["small"]


async def test_a_value_too_long_for_a_column_narrowed_behind_the_service_says_so(
    db, database_url
):

    await db.ok("list", data_source=PAIR)
    behind_the_service(
        database_url, db.project, 'ALTER TABLE "{schema}".pairs ALTER a TYPE varchar(3)'
    )

    status, body = await db.call("create", {"values": {"a": "four"}}, data_source=PAIR)
    assert status == 400, body
    assert body["error"]["details"] == [
        {"path": "params.values.a",
         "message": "PostgreSQL rejected this value of pairs as too long for its column"}
    ]  # fmt: skip
    assert (await db.ok("list", data_source=PAIR))["data"] == []


@pytest.mark.parametrize(
    ("definition", "details"),
    [
        ({"fields": [{"name": "a", "type": "text"}],
          "indexes": [{"fields": ["zz"]}, {"fields": []}]},
         [("indexes.0.fields", "unknown field zz"),
          ("indexes.1.fields", "Length must be between 1 and 32.")]),
        ({"fields": [{"name": "a", "type": "wat"}], "indexes": [{"fields": ["a", "zz"]}]},
         [("fields.0.type", None), ("indexes.0.fields", "unknown field zz")]),
        ({"fields": [{"name": "A", "type": "integer", "default": "x"}]},
         [("fields.0.name", None), ("fields.0.default", "expected an integer")]),
        ({"fields": [{"name": "a", "type": "text"}], "indexes": [{"fields": ["a", "a"]}]},
         [("indexes.0.fields", "field a named twice")]),
        # Seeds are checked whatever PREVIEW_APPLY_SEEDS says (this client leaves it false).
        ({"fields": [{"name": "a", "type": "integer"}],
          "seeds": [{"nope": 1}, "x", {"a": "abc"}]},
         [("seeds.0.nope", "Unknown field."), ("seeds.1", "Not a valid mapping type."),
          ("seeds.2.a", "expected an integer")]),
        ({"fields": [{"name": "a", "type": "integer", "required": True}],
          "seeds": [{"id": "x"}, {"a": None}]},
         [("seeds.0.a", "Missing data for required field."),
          ("seeds.0.id", "expected an integer"), ("seeds.1.a", "Field may not be null.")]),
        # A seed key naming a field that did not load is not called unknown as well.
        ({"fields": [{"name": "A", "type": "integer"}, {"name": "b", "type": "wat"}],
          "seeds": [{"A": 1, "b": 2, "c": 3}]},
         [("fields.0.name", None), ("fields.1.type", None), ("seeds.0.c", "Unknown field.")]),
        ({"fields": [{"name": "id", "type": "uuid"}], "seeds": [{"id": "x"}]},
         [("seeds.0.id", "expected a UUID string")]),
    ],
)  # fmt: skip
async def test_every_definition_violation_is_reported(db, definition, details):
    """A violation of one key must not hide a violation found across keys (API.md 3)."""
    data_source = {"type": "db", "name": "x", "table": "t", **definition}
    status, body = await db.call("list", data_source=data_source)
    assert status == 400, body
    found = [(d["path"], d["message"]) for d in body["error"]["details"]]
    assert [path for path, _ in found] == [f"dataSource.{path}" for path, _ in details]
    for (_, message), (_, expected) in zip(found, details, strict=True):
        assert expected is None or message == expected


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
)
async def test_a_datetime_past_the_years_a_read_can_hold_is_refused(db, moment):
    status, body = await db.call(
        "create", {"values": {"title": "edge", "placed_at": moment}}
    )

    assert status == 400, body
    assert [d["path"] for d in body["error"]["details"]] == ["params.values.placed_at"]
    assert (await db.ok("list"))["data"] == []
