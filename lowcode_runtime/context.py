"""Request-scoped values that any code of a request can read without passing them by hand.

The tracing middleware sets them; log lines and outbound clients read them.
"""

from __future__ import annotations

import contextvars
import os
import re

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


def new_id() -> str:
    """32 random hex digits, as a uuid4's hex is, without building the UUID object."""
    return os.urandom(16).hex()


def accept_trace_id(candidate: str | None) -> str:
    """The caller's ``x-trace-id`` when well formed, else a fresh one."""
    if candidate and TRACE_ID_PATTERN.fullmatch(candidate):
        return candidate
    return new_id()


def current_trace_id() -> str | None:
    return trace_id_var.get()


def current_request_id() -> str | None:
    return request_id_var.get()
