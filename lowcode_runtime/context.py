"""Request-scoped values that any code of a request can read without passing them by hand.

The tracing middleware sets them; log lines and outbound clients read them.
"""

from __future__ import annotations

import contextvars
import os
import re
import threading

TRACE_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lowcode_trace_id", default=None
)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lowcode_request_id", default=None
)
project_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lowcode_project_id", default=None
)


_ID_BYTES = 16
_IDS_PER_READ = 64
_random_bytes = b""
_used = 0
_ids_lock = threading.Lock()


def new_id() -> str:
    """32 random hex digits, as a uuid4's hex is; one ``os.urandom`` read serves 64 of them.

    A request takes two ids, and a system call each was a measurable part of a warm call.
    """
    global _random_bytes, _used
    with _ids_lock:
        if _used >= len(_random_bytes):
            _random_bytes, _used = os.urandom(_ID_BYTES * _IDS_PER_READ), 0
        start, _used = _used, _used + _ID_BYTES
        return _random_bytes[start:_used].hex()


def _forget_random_bytes() -> None:
    """A forked worker must not hand out the ids its parent had read ahead."""
    global _random_bytes, _used, _ids_lock
    _random_bytes, _used, _ids_lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_random_bytes)


def accept_trace_id(candidate: str | None) -> str:
    """The caller's ``x-trace-id`` when well formed, else a fresh one."""
    if candidate and TRACE_ID_PATTERN.fullmatch(candidate):
        return candidate
    return new_id()


def current_trace_id() -> str | None:
    return trace_id_var.get()


def current_request_id() -> str | None:
    return request_id_var.get()
