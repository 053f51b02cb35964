"""Tenant schemas of 6.1: slug rules, the owner recorded, SCHEMA_CONFLICT across projects."""

from __future__ import annotations

import hashlib
import uuid

import psycopg2
import pytest

from lowcode_db.tenancy import schema_name, slugify
from lowcode_runtime.errors import ValidationFailed
from tests.fixtures.database import drop_project_schema


def h8(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


@pytest.mark.parametrize(
    ("project", "schema"),
    [
        ("Café Ünïcode", "preview_cafe_unicode"),
        ("ACME--Shop__2024", "preview_acme_shop_2024"),
        ("__lead_and_trail__", "preview_lead_and_trail"),
        ("Łódź straße", "preview_lodz_strasse"),
        ("a,b 1,000", "preview_a_b_1_000"),
        ("a&amp;b", "preview_a_amp_b"),
    ],
)
def test_slug_folds_accents_and_collapses_runs(project, schema):
    assert schema_name(project) == schema


def test_slug_without_ascii_form_uses_the_hash():
    assert slugify("日本語") == ""
    assert schema_name("日本語") == "preview_" + h8("日本語")
    assert schema_name("!!!") == "preview_" + h8("!!!")


def test_long_project_ids_are_cut_to_63_bytes_with_the_hash():
    project = "x" * 80
    name = schema_name(project)
    assert len(name.encode()) == 63
    assert name == ("preview_" + "x" * 80)[:54] + "_" + h8(project)
    assert (
        schema_name("y" * 55) == "preview_" + "y" * 55
    )  # exactly 63 bytes: kept whole


@pytest.mark.parametrize("project", ["%20", "%20%20", "%09"])
async def test_blank_project_id_is_rejected(db, project):
    status, body = await db.call("list", project=project)
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"


def test_blank_project_id_has_no_schema():
    with pytest.raises(ValidationFailed):
        schema_name("  ")


async def test_schema_records_its_owner(db, database_url):
    await db.ok("list")

    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            f'SELECT project_id FROM "{schema_name(db.project)}"."__lowcode_owner"'
        )
        assert cursor.fetchall() == [(db.project,)]


async def test_another_project_on_the_same_schema_gets_schema_conflict(
    db, database_url
):
    first = f"Conflict {uuid.uuid4().hex[:8]}"
    second = first.replace("Conflict ", "conflict_")
    assert schema_name(first) == schema_name(second)
    try:
        await db.ok("create", {"values": {"title": "secret row"}}, project=first)

        status, body = await db.call("list", project=second)
        assert status == 409
        assert body["error"]["code"] == "SCHEMA_CONFLICT"
        assert "secret row" not in str(body)

        status, body = await db.call(
            "create", {"values": {"title": "x"}}, project=second
        )
        assert status == 409
    finally:
        drop_project_schema(database_url, first)
