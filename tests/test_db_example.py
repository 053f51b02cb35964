"""The end-to-end example of docs/db.md, run request by request as the page writes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
