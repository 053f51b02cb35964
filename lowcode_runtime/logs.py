"""Log set-up: loguru, JSON lines on stdout by default, every line masked before it is written.

Use ``from lowcode_runtime.logs import logger`` and bind an ``event`` for structured lines:
``logger.bind(event=events.CALL_SUCCESS, durationMs=3).info("...")``. Trace fields of the
current request are added to every line from the context variables.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import orjson
from aiohttp.http_exceptions import HttpProcessingError
from loguru import logger

from lowcode_runtime import events
from lowcode_runtime.context import current_request_id, current_trace_id
from lowcode_runtime.masking import mask, needs_masking

_LEVELS = {
    "trace": "TRACE",
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
}
_RESERVED = {"time", "level", "message", "event", "traceId", "requestId"}


def _add_trace_fields(record: Any) -> None:
    trace_id = current_trace_id()
    if trace_id is not None:
        record["extra"].setdefault("traceId", trace_id)
        record["extra"].setdefault("requestId", current_request_id())


class _UtcTime:
    """``2026-01-02T03:04:05.678+00:00`` (``isoformat`` in UTC, to the millisecond), faster.

    Every line of a second shares its text up to the second; only the milliseconds differ.
    """

    def __init__(self) -> None:
        self.second: int | None = None
        self.text = ""

    def __call__(self, moment: datetime) -> str:
        since = moment - _EPOCH  # exact, where a float timestamp rounds far from 1970
        return self._text(
            since.days * 86400 + since.seconds, since.microseconds // 1000
        )

    def from_ns(self, ns: int) -> str:
        """The same text for ``time.time_ns()``: a third of the cost of ``datetime.now``'s."""
        second, rest = divmod(ns, 1_000_000_000)
        return self._text(second, rest // 1_000_000)

    def _text(self, second: int, milliseconds: int) -> str:
        if second != self.second:
            whole = _NAIVE_EPOCH + timedelta(seconds=second)
            self.text = whole.isoformat(timespec="seconds")
            self.second = second
        return f"{self.text}.{milliseconds:03d}+00:00"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
utc_time = _UtcTime()


def _json_line(record: Any, masked: bool) -> str:
    """One JSON object; each string is masked before serialising, so the line stays JSON."""
    return _line_text(
        utc_time(record["time"]),
        record["level"].name.lower(),
        record["message"],
        record["extra"],
        record["exception"],
        masked,
    )


def _line_text(
    time_text: str,
    level: str,
    message: str,
    extra: dict[str, Any],
    exception: Any,
    masked: bool,
) -> str:
    line: dict[str, Any] = {
        "time": time_text,
        "level": level,
        "message": message,
        "event": extra.get("event", "log"),
    }
    if "traceId" in extra:
        line["traceId"] = extra["traceId"]
        line["requestId"] = extra.get("requestId")
    for key, value in extra.items():
        if key not in _RESERVED and not key.startswith("_"):
            line[key] = value
    if exception is not None:
        line["exception"] = "".join(
            traceback.format_exception(
                exception.type, exception.value, exception.traceback
            )
        )
    return _encoded(line, masked)


def _encoded(line: dict[str, Any], masked: bool) -> str:
    """The line as JSON text, masked where it needs to be.

    Most lines hold nothing to mask. Their JSON text holds every text of the line as it is,
    keys included, unless the encoder escaped a character: such a text is scanned once. In
    one with an escape a secret may be spelled otherwise, so its texts are judged instead.
    """
    text = _dumps(line)
    if not masked:
        return text
    if "\\" not in text:
        if not needs_masking(text):
            return text
    elif _plainly_clean(line):
        return text
    return _dumps(_masked(line))


def _dumps(line: dict[str, Any]) -> str:
    try:
        return orjson.dumps(line, default=str).decode()
    except TypeError:
        # What orjson refuses (a lone surrogate, an integer past 64 bits) the standard
        # library still writes.
        return json.dumps(line, default=str, ensure_ascii=False)


_PLAIN = (int, float, type(None))
_FLAT = frozenset({str, int, float, bool, type(None)})


def _plainly_clean(line: dict[str, Any]) -> bool:
    """True when the line is plain JSON values and no text in it needs masking.

    Most lines hold nothing to mask: their texts are scanned once, joined, instead of each
    being masked. A line of plain values only (the call lines) is read in one pass; anything
    else is walked by :func:`_nested_clean`.
    """
    texts = list(line)  # the keys are texts to mask too
    for value in line.values():
        kind = type(value)
        if kind is str:
            texts.append(value)
        elif kind not in _FLAT:
            return _nested_clean(line)
    try:
        joined = "\n".join(texts)
    except TypeError:  # a key that is not a text
        return False
    return not needs_masking(joined)


def _nested_clean(line: dict[str, Any]) -> bool:
    """:func:`_plainly_clean` for lines that hold lists, dicts or other objects."""
    texts: list[str] = []
    pending: list[Any] = [line]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                return False
            texts.extend(value)  # keys are texts to mask too
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif not isinstance(value, _PLAIN):
            return False
    return not needs_masking("\n".join(texts))


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask(str(k)): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask(str(value))


class MaskedSink:
    """Formats a record, masks every text in it (tracebacks included), writes one line."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.fmt = fmt
        self.lock = threading.Lock()  # the direct lines below do not pass loguru's
        # The loop a flush is scheduled on: a loop that closed before it ran holds no line.
        self._flush_pending: asyncio.AbstractEventLoop | None = None
        self._pending: list[str] = []
        self._flush_thread = 0

    def __call__(self, message: Any) -> None:
        record = message.record
        masked = not record["extra"].get("_unmasked")
        if self.fmt == "json":
            text = _json_line(record, masked)
        else:
            text = str(message).rstrip("\n")
            text = mask(text) if masked else text
        self.write_line(text)

    def write_line(self, text: str) -> None:
        """Write one line; in the event loop, the lines of a turn go out together at its end.

        Under load a turn ends many calls, and a system call per line was a measurable part
        of each (an unbuffered stdout, as ``PYTHONUNBUFFERED`` makes it, writes every line
        at once); a line still leaves the process within the turn that wrote it. Outside a
        running loop (start-up, threads, shutdown) each line is written at once.
        """
        with self.lock:
            self._pending.append(text + "\n")
            pending = self._flush_pending
            if (
                pending is not None
                and self._flush_thread == threading.get_ident()
                and pending.is_running()
            ):
                return  # this thread's running loop is ours: its turn ends with the flush
            try:
                # Once a turn at most: on Python 3.11 it asks the kernel for the process id.
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._write_pending()
                return
            if pending is loop:
                return
            self._flush_pending = loop
            self._flush_thread = threading.get_ident()
        loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:
            self._write_pending()

    def _write_pending(self) -> None:
        """Write the held lines; an output that is gone (a closed pipe) loses them quietly.

        Raising would reach asyncio's handler, whose report is itself a line for this sink:
        a loop that never ends, and no request is helped by it.
        """
        self._flush_pending = None
        text, self._pending = "".join(self._pending), []
        try:
            if text:
                self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # nowhere left to say so


_direct_sink: MaskedSink | None = None
_sink: MaskedSink | None = None  # the sink of setup_logging, JSON or pretty


def flush_logs() -> None:
    """Write out the lines the current event-loop turn still holds (tests read them at once)."""
    if _sink is not None:
        _sink.flush()


atexit.register(flush_logs)  # a loop that closed before its turn's flush ran


_direct_handler = -1  # loguru's id of that sink
_direct_levels: frozenset[str] = frozenset()


def hot_line(level: str, message: str, fields: dict[str, Any]) -> None:
    """``logger.bind(**fields).log(level, message)`` for the line of every call, cheaper.

    With the JSON sink of :func:`setup_logging` as loguru's only one, the line is written
    straight to it: the same text, masked alike, without loguru's record (frame, thread,
    process, its formatting), which cost about twice the line itself. Otherwise (another
    format, a sink added since) loguru writes it as it writes every other line. ``fields``
    are the line's own (``event`` and the call's), never ``time``, ``level`` or ``message``.
    """
    sink = _direct_sink
    # Private to loguru (pinned at 0.7.x): it offers no public way to list its sinks.
    handlers = logger._core.handlers  # type: ignore[attr-defined]
    if sink is None or len(handlers) != 1 or _direct_handler not in handlers:
        logger.bind(**fields).log(level.upper(), message)
        return
    if level not in _direct_levels:
        return

    line = {
        "time": utc_time.from_ns(time.time_ns()),
        "level": level,
        "message": message,
        "event": fields.pop("event", "log"),
    }
    trace_id = current_trace_id()
    if trace_id is not None:
        line["traceId"] = trace_id
        line["requestId"] = current_request_id()
    line.update(fields)
    sink.write_line(_encoded(line, masked=True))


def _pretty_format(record: Any) -> str:
    fields = " ".join(
        f"{k}={v}"
        for k, v in record["extra"].items()
        if not k.startswith("_") and k != "event"
    )
    event = record["extra"].get("event", "")
    head = "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level>"
    return (
        head
        + f" {event} "
        + "{message} "
        + fields.replace("{", "{{").replace("}", "}}")
        + ("\n{exception}" if record["exception"] else "")
    )


class StdlibToLoguru(logging.Handler):
    """Hands a stdlib record (aiohttp, asyncio, gunicorn) to loguru: masked JSON like ours."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname if record.levelname in _LEVELS.values() else "ERROR"
        exception = record.exc_info if record.exc_info and record.exc_info[0] else None
        if exception is not None and issubclass(exception[0], HttpProcessingError):
            _unparsable_request(record, exception[1])
            return
        logger.bind(
            event=events.LIBRARY_LOG, source=record.name, pid=record.process
        ).opt(exception=exception).log(level, record.getMessage())


def _unparsable_request(record: logging.LogRecord, error: Any) -> None:
    """A request aiohttp's parser refused (it answered 400): one warning, no traceback.

    aiohttp logs each at error level with its traceback, so any client could write error
    lines at will; the traceback says nothing about the service.
    """
    reason = getattr(error, "message", "") or type(error).__name__
    level = "WARNING" if record.levelno >= logging.WARNING else "DEBUG"
    logger.bind(
        event=events.HTTP_UNPARSABLE,
        source=record.name,
        reason=f"{type(error).__name__}: {reason}"[:300],
    ).log(level, f"refused a request that is not valid HTTP: {reason}"[:300])


_debug_enabled = True  # loguru's own default sink writes debug lines


def debug_enabled() -> bool:
    """Whether debug lines are written; hot paths skip building the ones that would not be."""
    return _debug_enabled


def setup_logging(
    level: str = "info", fmt: str = "json", stream: TextIO | None = None
) -> None:
    """Route every line, loguru's and the stdlib's, to one masked sink."""
    global _debug_enabled, _direct_sink, _direct_handler, _direct_levels, _sink
    _debug_enabled = level in ("trace", "debug")
    logging.basicConfig(handlers=[StdlibToLoguru()], level=logging.WARNING, force=True)
    logger.remove()
    logger.configure(patcher=_add_trace_fields)
    if _sink is not None:
        _sink.flush()  # the lines of the sink being replaced go out first
    sink = MaskedSink(stream or sys.stdout, fmt)
    _sink = sink
    if fmt == "json":
        _direct_handler = logger.add(
            sink, level=_LEVELS[level], format="{message}", catch=False
        )
        _direct_sink = sink
        _direct_levels = frozenset(_written_from(level))
    else:
        _direct_sink = None
        logger.add(
            sink,
            level=_LEVELS[level],
            format=_pretty_format,
            colorize=False,
            catch=False,
        )


def _written_from(level: str) -> list[str]:
    """The level names written when the sink's level is ``level``."""
    names = list(_LEVELS)
    return names[names.index(level) :]


__all__ = [
    "StdlibToLoguru",
    "debug_enabled",
    "flush_logs",
    "hot_line",
    "logger",
    "setup_logging",
]
