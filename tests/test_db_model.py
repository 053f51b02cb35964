"""Tables kept per loaded definition: a warm call's table is the one a fresh build gives."""

from __future__ import annotations

import copy
import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from lowcode_db import model
from lowcode_db.model import TablesByDefinition, build_table
from lowcode_db.schema import DefinitionSchema
from lowcode_runtime.dispatch import DefinitionCache
from lowcode_runtime.types import DataSourceType
from tests.fixtures.database import ORDERS

_field = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["title", "note", "qty", "id"]),
        "type": st.sampled_from(["string", "text", "integer", "uuid", "json"]),
    },
    optional={"required": st.booleans(), "unique": st.booleans()},
)
_definition = st.fixed_dictionaries(
    {
        "table": st.sampled_from(["items", "orders"]),
        "fields": st.lists(
            _field, min_size=1, max_size=3, unique_by=lambda f: f["name"]
        ),
    }
)
DB_TYPE = DataSourceType("db", DefinitionSchema(), {}, lambda call: None)


def _loaded(raw: dict) -> dict:
    """As the core loads it: without ``type`` and ``name``."""
    raw = {k: v for k, v in raw.items() if k not in ("type", "name")}
    return DefinitionSchema().load(copy.deepcopy(raw))


def _fresh(definition: dict) -> model.Table:
    """A table built from nothing: no cache of the module answers it."""
    return model._build.__wrapped__(model._definition_json(definition))


@settings(max_examples=100)
@given(st.lists(_definition, min_size=1, max_size=6))
def test_a_kept_table_is_what_a_fresh_build_gives(raws):
    """Definitions as the core hands them, changed or repeated in any order, kept or not."""
    definitions, tables = DefinitionCache(size=3), TablesByDefinition(size=2)
    for raw in [*raws, *reversed(raws)]:
        problems: list = []
        loaded = definitions.load("db", DB_TYPE, raw, problems)
        if problems:
            continue
        table = tables.get(loaded)
        assert table == _fresh(loaded)
        assert table.columns == _fresh(loaded).columns  # types and flags too
        assert tables.get(loaded) is table


def test_a_changed_definition_gets_its_own_table():
    tables = TablesByDefinition()
    first = _loaded(ORDERS)
    before = tables.get(first)

    added = _loaded(
        {**ORDERS, "fields": [*ORDERS["fields"], {"name": "note", "type": "text"}]}
    )
    fields = copy.deepcopy(ORDERS["fields"])
    fields[1]["type"] = "integer"  # amount
    retyped = _loaded({**ORDERS, "fields": fields})
    assert tables.get(added).column("note") is not None
    assert before.column("note") is None
    assert tables.get(retyped).column_type("amount") == "integer"
    assert tables.get(first) is before


def test_dicts_that_die_never_lend_their_table_to_a_later_dict():
    """A freed dict's id may be reused; an entry holds its dict, so it is never mistaken."""
    tables = TablesByDefinition(size=2)
    for n in range(200):
        definition = _loaded(
            {
                **ORDERS,
                "fields": [*ORDERS["fields"], {"name": f"f{n}", "type": "integer"}],
            }
        )
        assert tables.get(definition).column(f"f{n}") is not None
        del definition
        gc.collect()
    assert len(tables._entries) == 2


def test_the_kept_tables_stay_bounded():
    tables = TablesByDefinition(size=4)
    kept = [_loaded({**ORDERS, "table": f"t{n}"}) for n in range(10)]
    for definition in kept:
        tables.get(definition)
    assert len(tables._entries) == 4
    assert [entry[0] for entry in tables._entries.values()] == kept[-4:]

    big = {**_loaded(ORDERS), "seeds": [{"title": "x" * model.MAX_KEPT_DEFINITION}]}
    assert tables.get(big) == build_table(big)
    assert all(entry[0] is not big for entry in tables._entries.values())


def test_a_unique_constraint_is_named_by_its_fields_under_either_index_name():
    definition = {
        "table": "pairs",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "string"}],
        "indexes": [{"fields": ["a", "b"], "unique": True}],
    }
    table = build_table(DefinitionSchema().load(definition))
    index = table.indexes[0]

    assert table.unique_fields(index.name) == ("a", "b")
    legacy = model.legacy_index_name("pairs", ("a", "b"), True)
    assert legacy != index.name
    assert table.unique_fields(legacy) == ("a", "b")
    assert table.unique_fields("pairs_pkey") == ("id",)
    assert table.unique_fields("someone_elses") is None
    assert table.unique_fields(None) is None
