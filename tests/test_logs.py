"""Log formats and levels of API.md section 7."""

from __future__ import annotations

import io
import json

from lowcode_runtime import context
from lowcode_runtime.logs import logger, setup_logging


def test_json_lines_have_the_contract_fields():
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    tokens = context.trace_id_var.set("t-1"), context.request_id_var.set("r-1")
    try:
        logger.bind(event="demo.event", answer=42).info("hello")
    finally:
        context.trace_id_var.reset(tokens[0])
        context.request_id_var.reset(tokens[1])
        setup_logging("warning", "json")

    line = json.loads(stream.getvalue())
    assert {
        k: line[k]
        for k in ("level", "message", "event", "traceId", "requestId", "answer")
    } == {
        "level": "info",
        "message": "hello",
        "event": "demo.event",
        "traceId": "t-1",
        "requestId": "r-1",
        "answer": 42,
    }
    assert line["time"].endswith("+00:00")


def test_level_filters_and_pretty_is_for_people():
    stream = io.StringIO()
    setup_logging("warning", "pretty", stream=stream)
    try:
        logger.info("quiet")
        logger.bind(event="demo.warn", key="value").warning("loud Bearer abc.def")
    finally:
        setup_logging("warning", "json")

    text = stream.getvalue()
    assert "quiet" not in text
    assert "loud" in text and "demo.warn" in text and "key=value" in text
    assert "abc.def" not in text, "pretty lines are masked too"
    assert not text.lstrip().startswith("{")


async def test_library_lines_are_masked_json_too(make_client, logs):
    import asyncio

    client = await make_client(load_entry_points=False)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\nContent-Type: b\r\n"
        b"Authorization: Bearer lib-secret-token\r\n\r\n"
    )
    await writer.drain()
    assert b" 400 " in (await reader.read(100))
    writer.close()

    library = logs.events("library.log")
    assert library and library[0]["source"].startswith("aiohttp")
    assert "lib-secret-token" not in logs.text


def test_masking_keeps_every_json_line_whole():
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    try:
        logger.bind(
            event="demo", projectId="password=abc", path="/x/password=abc/y"
        ).info("failed: password=abc")
        try:
            raise ValueError("dsn postgres://u:pw1@h/db password=abc")
        except ValueError:
            logger.exception("boom password=abc")
    finally:
        setup_logging("warning", "json")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["projectId"] == "password=[REDACTED]"
    assert lines[0]["path"] == "/x/password=[REDACTED]"
    assert "pw1" not in lines[1]["exception"] and "abc" not in stream.getvalue()
