"""Log formats and levels of API.md section 7."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowcode_runtime import context
from lowcode_runtime.logs import (
    _dumps,
    _encoded,
    _masked,
    _nested_clean,
    _plainly_clean,
    hot_line,
    logger,
    setup_logging,
    utc_time,
)
from lowcode_runtime.masking import register_secret


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


def test_library_lines_are_masked_json_too():
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    try:
        logging.getLogger("aiohttp.web").warning("sent Bearer lib-secret-token")
    finally:
        setup_logging("warning", "json")

    line = json.loads(stream.getvalue())
    assert line["event"] == "library.log" and line["source"] == "aiohttp.web"
    assert line["level"] == "warning"
    assert "lib-secret-token" not in stream.getvalue()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\nContent-Type: b\r\n",
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\n"
        b"Content-Length: 2\r\n",
    ],
    ids=["duplicate-content-type", "brotli-body"],
)
async def test_a_request_that_is_not_valid_http_is_one_warning_without_a_traceback(
    make_client, logs, head
):
    client = await make_client(load_entry_points=False)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(head + b"Authorization: Bearer lib-secret-token\r\n\r\n{}")
    await writer.drain()
    assert b" 400 " in (await reader.read(100))
    writer.close()

    refused = logs.events("http.unparsable_request")
    assert [line["level"] for line in refused] == ["warning"]
    assert "exception" not in refused[0] and refused[0]["reason"]
    assert not [line for line in logs.records() if line["level"] == "error"]
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


_flat_values = st.one_of(
    st.text(), st.integers(), st.floats(), st.booleans(), st.none()
)


@given(
    st.dictionaries(st.text(), _flat_values, max_size=8),
    st.sampled_from(["", "Bearer abcdefghijklmnop", "postgresql://u:pw@h/db"]),
)
def test_a_flat_line_is_judged_as_the_general_walk_judges_it(line, extra_text):
    line = {**line, "message": f"call {extra_text}"}

    assert _plainly_clean(line) == _nested_clean(line)


_SECRET = "line-secret-7f3a"
_ESCAPED_SECRETS = ('quoted"secret', "back\\slash", "tab\tsecret")
_texts_with_secrets = st.one_of(
    st.text(),
    st.builds(
        "".join,
        st.lists(
            st.sampled_from(
                [
                    _SECRET,
                    *_ESCAPED_SECRETS,
                    "Bearer abcdefghij",
                    "postgresql://u:pw@h/db",
                    "password=x",
                    "\\",
                    '"',
                    "\n",
                    "\u00e9",
                    "\ud800",
                    " ",
                    "x",
                ]
            ),
            max_size=6,
        ),
    ),
)


@given(
    st.dictionaries(
        _texts_with_secrets,
        st.one_of(_texts_with_secrets, st.integers(), st.floats(), st.none()),
        max_size=6,
    )
)
def test_a_line_scanned_as_json_text_is_masked_as_its_texts_one_by_one(line):
    register_secret(_SECRET, *_ESCAPED_SECRETS)
    by_texts = _dumps(line) if _plainly_clean(line) else _dumps(_masked(line))

    assert _encoded(line, masked=True) == by_texts


@given(st.datetimes(timezones=st.timezones(), min_value=datetime(1971, 1, 2)))
def test_the_line_time_is_isoformat_in_utc_to_the_millisecond(moment):
    expected = moment.astimezone(UTC).isoformat(timespec="milliseconds")

    assert utc_time(moment) == expected


@given(st.integers(min_value=0, max_value=2**62))
def test_the_time_from_nanoseconds_is_the_same_text(ns):
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)

    assert utc_time.from_ns(ns) == utc_time(moment)


def _one_line(level: str, write: Callable[[], None]) -> list[dict[str, Any]]:
    stream = io.StringIO()
    setup_logging(level, "json", stream=stream)
    tokens = context.trace_id_var.set("t-1"), context.request_id_var.set("r-1")
    try:
        write()
    finally:
        context.trace_id_var.reset(tokens[0])
        context.request_id_var.reset(tokens[1])
        setup_logging("warning", "json")
    return [json.loads(text) for text in stream.getvalue().splitlines()]


def test_a_hot_line_is_the_line_loguru_writes():
    fields = {"event": "demo.event", "answer": 42, "token": "Bearer abcdefghijklmnop"}
    hot = _one_line("info", lambda: hot_line("info", "hello", dict(fields)))
    usual = _one_line("info", lambda: logger.bind(**fields).info("hello"))

    assert len(hot) == len(usual) == 1
    assert hot[0].keys() == usual[0].keys()
    assert {**hot[0], "time": None} == {**usual[0], "time": None}
    assert "abcdefghijklmnop" not in json.dumps(hot[0])  # masked alike


def test_a_hot_line_below_the_level_is_not_written():
    assert _one_line("warning", lambda: hot_line("info", "hello", {"event": "e"})) == []
    written = _one_line("warning", lambda: hot_line("warning", "hi", {"event": "e"}))
    assert [line["level"] for line in written] == ["warning"]


def test_a_hot_line_reaches_a_sink_added_since():
    seen: list[str] = []

    def add_and_write() -> None:
        sink = logger.add(lambda message: seen.append(message.record["message"]))
        try:
            hot_line("info", "hello", {"event": "e"})
        finally:
            logger.remove(sink)

    assert [line["message"] for line in _one_line("info", add_and_write)] == ["hello"]
    assert seen == ["hello"]


class CountingStream(io.StringIO):
    """A stream that says what reached it: ``flushed`` holds its text at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


async def test_lines_of_one_event_loop_turn_are_flushed_once_at_its_end():
    stream = CountingStream()
    setup_logging("info", "json", stream=stream)
    try:
        for n in range(3):
            logger.bind(event="test.turn").info(f"line {n}")
        assert stream.flushed == []  # not yet: the turn goes on

        await asyncio.sleep(0)
        assert len(stream.flushed) == 1
        assert stream.flushed[0].count("\n") == 3

        logger.info("next turn")
        await asyncio.sleep(0)
        assert len(stream.flushed) == 2
    finally:
        setup_logging("warning", "json")


def test_a_line_outside_an_event_loop_is_flushed_at_once():
    stream = CountingStream()
    setup_logging("info", "json", stream=stream)
    try:
        logger.info("start-up")
        assert len(stream.flushed) == 1
    finally:
        setup_logging("warning", "json")


def test_a_loop_that_ended_before_its_flush_holds_no_line_back():
    stream = CountingStream()
    setup_logging("info", "json", stream=stream)
    try:
        loop = asyncio.new_event_loop()
        with pytest.raises(SystemExit):  # leaves the loop at once, its turn unfinished
            loop.run_until_complete(_log_and_stop_at_once())  # its flush never runs
        loop.close()
        before = len(stream.flushed)

        asyncio.run(_log_one("in a new loop"))
        assert len(stream.flushed) > before
        assert "in a new loop" in stream.flushed[-1]
    finally:
        setup_logging("warning", "json")


async def _log_and_stop_at_once() -> None:
    logger.info("last line of a loop")
    raise SystemExit


async def _log_one(text: str) -> None:
    logger.info(text)
    await asyncio.sleep(0)


def test_the_last_lines_of_a_loop_are_written_when_the_process_exits(tmp_path):
    """A loop that ends before its turn's flush runs still leaves its lines in the output."""
    script = (
        "import asyncio\n"
        "from lowcode_runtime.logs import logger, setup_logging\n"
        "setup_logging('info', 'json')\n"
        "async def main():\n"
        "    logger.info('the last words')\n"
        "    raise SystemExit(0)\n"
        "loop = asyncio.new_event_loop()\n"
        "try:\n"
        "    loop.run_until_complete(main())\n"
        "except SystemExit:\n"
        "    loop.close()  # the turn's flush never runs\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "the last words" in result.stdout, result


class GoneStream(io.StringIO):
    """An output whose reader went away, as ``| head -2`` leaves stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def write(self, text: str) -> int:
        self.attempts += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


async def test_an_output_that_went_away_loses_lines_quietly_without_spinning():
    stream = GoneStream()
    setup_logging("info", "json", stream=stream)
    try:
        logger.info("nobody reads this")
        for _ in range(
            20
        ):  # a report of the failure would be a new line, then a new flush
            await asyncio.sleep(0)
        assert stream.attempts == 1

        logger.info("nor this")
        await asyncio.sleep(0)
        assert stream.attempts == 2
    finally:
        setup_logging("warning", "json")
