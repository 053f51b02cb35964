"""The operator's docs cannot drift from the code: variables, defaults and metric names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lowcode_runtime import metrics
from lowcode_runtime.config import variables

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"


def table_cell(default: Any) -> str:
    """A default as the README's table writes it."""
    if default is None:
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, list):
        return f"`{','.join(default)}`" if default else "empty"
    return f"`{default}`"


def example_value(default: Any) -> str:
    if default is None:
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list):
        return ",".join(default)
    return str(default)


def env_table_rows() -> dict[str, list[str]]:
    text = README.read_text()
    table = text.split("<!-- env-table:", 1)[1].split("<!-- end env-table -->", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_operations_env_table_lists_every_variable_with_its_default():
    rows = env_table_rows()
    expected = {
        name: table_cell(default) for name, (_, default, _) in variables().items()
    }

    assert sorted(rows) == sorted(expected)
    assert {name: cells[0] for name, cells in rows.items()} == expected
    assert all(cells[1] for cells in rows.values()), "a variable has no meaning written"


def test_env_example_lists_every_variable_with_its_default():
    found = dict(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M)
    )
    expected = {
        name: example_value(default) for name, (_, default, _) in variables().items()
    }

    assert {name: found.get(name) for name in expected} == expected


def test_every_metric_named_in_the_operations_doc_exists():
    suffixes = {"counter": ["_total"], "histogram": ["", "_bucket", "_count", "_sum"]}
    exported = {
        collector.name + suffix
        for collector in metrics.REGISTRY.collect()
        for suffix in suffixes.get(collector.type, [""])
    }
    named = set(
        re.findall(r"\blowcode_[a-z_]+_(?:total|seconds)\b", README.read_text())
    )
    named |= set(re.findall(r"\blowcode_[a-z_]+", OPERATIONS.read_text()))
    named -= {
        "lowcode_runtime",
        "lowcode_preview",
        "lowcode_preview_schemas_only",
        "lowcode_db",
    }

    assert named, "the doc names no metric"
    assert named <= exported, named - exported


def test_every_metric_of_the_service_is_documented():
    families = {collector.name for collector in metrics.REGISTRY.collect()}
    text = OPERATIONS.read_text()

    assert families
    for family in families:
        assert f"`{family}" in text, family
