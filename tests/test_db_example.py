"""The end-to-end example of docs/db.md, run request by request as the page writes them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from lowcode_db.tenancy import schema_name
from tests.conftest import AUTH

DOC = Path(__file__).parent.parent / "docs" / "db.md"
CURL = re.compile(
    r"^curl -s (?:-X (\w+) )?http://localhost:3001(\S+).*?(?:-d '(.*)')?$", re.M
)
ANSWER = re.compile(r"^\{\"ok\": true, \"data\": (.*), \"meta\": ", re.M)


def doc_requests():
    text = DOC.read_text(encoding="utf-8")
    return [
        (method or "GET", path, json.loads(body) if body else None)
        for method, path, body in CURL.findall(text)
    ]


def doc_answers():
    return [json.loads(m) for m in ANSWER.findall(DOC.read_text(encoding="utf-8"))]


async def test_the_documented_requests_answer_as_documented(db):
    requests = doc_requests()
    answers = doc_answers()
    assert [r[0] for r in requests] == ["POST"] * 4 + ["GET"]
    assert len(answers) == len(requests)

    for (method, path, body), expected in zip(requests, answers, strict=True):
        path = path.replace("/demo", f"/{db.project}")
        response = await db.client.request(method, path, json=body, headers=AUTH)
        answer = await response.json()
        assert response.status == 200, answer
        if "lastAppliedAt" in expected:
            assert answer["data"]["status"] == expected["status"] == "ready"
            assert answer["data"]["lastError"] is None
        else:
            assert answer["data"] == expected
        if "page" in str(expected):
            assert answer["meta"]["page"]["total"] == 1


HEREDOC = re.compile(r"^cat > \"\$DEMO_DIR/(\S+)\" <<'EOF'\n(.*?)\nEOF$", re.M | re.S)
COMMAND = re.compile(
    r"^\.venv/bin/python -m lowcode_runtime (migrate .*?)(?:\s+#.*)?$", re.M
)
SUMMARY = re.compile(r"^-- planned: .*$", re.M)


def test_the_documented_commands_run_as_documented(database_url, project_id, tmp_path):
    text = DOC.read_text(encoding="utf-8")
    assert (
        "\npython -m" not in text
    )  # the venv's interpreter, as the README installs it
    # Files go to a folder of their own, never into the repository the commands run from.
    assert '\nDEMO_DIR="$(mktemp -d)"\n' in text
    assert all(
        t.startswith('"$DEMO_DIR/') for t in re.findall(r"^cat > (\S+)", text, re.M)
    )
    ((file_name, body),) = HEREDOC.findall(text)
    (tmp_path / file_name).write_text(body)
    commands = [
        [word.replace("$DEMO_DIR", str(tmp_path)) for word in shlex.split(c)]
        for c in COMMAND.findall(text)
    ]
    assert [c[-1] for c in commands] == ["--dry-run", "--json"]
    documented = commands[0][1]

    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "error"}
    dry_run = [sys.executable, "-m", "lowcode_runtime", *commands[0]]
    dry_run[dry_run.index(documented)] = project_id
    result = subprocess.run(
        dry_run, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    expected = (
        SUMMARY.search(text)
        .group(0)
        .replace(schema_name(documented), schema_name(project_id))
    )
    assert result.stderr.strip() == expected
    statements = result.stdout.splitlines()
    assert len(statements) == 3
    assert "applied" not in result.stderr
