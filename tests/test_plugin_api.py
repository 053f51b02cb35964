"""The public API a plugin may import: pinned, documented, and all the examples use.

Removing a name fails here: it is a promise to plugin authors (stable across minor versions).
"""

from __future__ import annotations

import ast
import hashlib
import json
from importlib import metadata
from pathlib import Path

import pytest

import lowcode_runtime

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "lowcode-plugin-kv": "lowcode_plugin_kv",
    "lowcode-plugin-graphql": "lowcode_plugin_graphql",
}
PUBLIC_MODULES = {"lowcode_runtime.errors", "lowcode_runtime.testing"}

PINNED = {
    "__version__", "hookimpl", "errors",
    "Call", "DataSourceType", "Deadline", "PluginInfo", "Result", "SecretsSource",
    "OutboundHeaders", "Scalar", "StrictBoolean", "StrictInteger", "check_header_names",
    "check_templates",
    "url_problem",
    "TemplateContext", "MissingParam", "missing_param", "render_entry", "render_headers",
    "secret_names", "TemplateRef", "whole_ref",
    "Outbound", "OutboundClient", "UpstreamAnswer", "USER_AGENT", "make_session",
    "decode_text", "is_json_type", "parse_json", "upstream_status",
    "Redactor", "mask", "register_secret",
    "ok_response", "describe_route",
}  # fmt: skip


def test_the_public_names_are_pinned():
    assert set(lowcode_runtime.__all__) == PINNED
    for name in PINNED:
        assert getattr(lowcode_runtime, name) is not None, name


def test_every_public_name_is_documented():
    guide = ROOT.joinpath("docs", "plugins.md").read_text()
    undocumented = [n for n in sorted(PINNED) if f"`{n}" not in guide]
    assert not undocumented, f"docs/plugins.md does not name {undocumented}"


def test_every_error_class_has_the_public_base_class():
    """``errors.RuntimeBackendError`` is public too: a plugin catches it (the graphql example)."""
    classes = [
        value
        for value in vars(lowcode_runtime.errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert all(
        issubclass(c, lowcode_runtime.errors.RuntimeBackendError) for c in classes
    )
    guide = ROOT.joinpath("docs", "plugins.md").read_text()
    assert "`errors.RuntimeBackendError`" in guide


def test_the_examples_import_only_the_public_api():
    for package in EXAMPLES.values():
        for path in ROOT.joinpath("examples").rglob(f"{package}/*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = {alias.name for alias in node.names}
                    module = node.module
                elif isinstance(node, ast.Import):
                    names, module = set(), next(a.name for a in node.names)
                else:
                    continue
                if module == "lowcode_runtime":
                    assert names <= PINNED, f"{path.name} imports {names - PINNED}"
                elif module.startswith("lowcode_runtime."):
                    assert module in PUBLIC_MODULES, f"{path.name} imports {module}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_examples_are_installed_from_their_current_source():
    """./scripts/test installs them built, not editable; a stale copy would test old code."""
    for dist_name, package in EXAMPLES.items():
        dist = metadata.distribution(dist_name)
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        assert not direct.get("dir_info", {}).get("editable"), (
            f"{dist_name} is editable"
        )

        source = ROOT / "examples" / dist_name / package
        installed = {
            Path(str(f)).name: dist.locate_file(f)
            for f in dist.files or ()
            if str(f).startswith(f"{package}/") and str(f).endswith(".py")
        }
        for path in source.glob("*.py"):
            assert path.name in installed, f"{dist_name}: {path.name} not installed"
            assert _digest(path) == _digest(Path(str(installed[path.name]))), (
                f"the installed {dist_name} is older than its source: run ./scripts/test"
            )


def test_a_template_ref_from_whole_ref_is_looked_up():
    ctx = lowcode_runtime.TemplateContext({"a": {"b": [7]}}, {"KEY": "k"})
    assert ctx.lookup(lowcode_runtime.whole_ref(" {{ params.a.b.0 }} ")) == 7
    assert ctx.lookup(lowcode_runtime.whole_ref("{{secrets.KEY}}")) == "k"
    assert lowcode_runtime.whole_ref("x {{ params.a }}") is None
    assert isinstance(
        lowcode_runtime.whole_ref("{{ params.a }}"), lowcode_runtime.TemplateRef
    )


def test_outbound_headers_list_every_problem_at_once_for_any_type():
    from marshmallow import Schema, ValidationError

    class Definition(Schema):
        headers = lowcode_runtime.OutboundHeaders()

    with pytest.raises(ValidationError) as raised:
        Definition().load(
            {
                "headers": {
                    "Bad Name": "v",
                    "X-A": {"k": 1},
                    "X-B": "a\u0085b",
                    "X-C": "{{ no }}",
                }
            }
        )
    text = json.dumps(raised.value.messages)
    for name in ("Bad Name", "X-A", "X-B", "X-C"):
        assert name in text, text
