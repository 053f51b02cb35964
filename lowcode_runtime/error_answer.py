"""The error envelope always goes out: masked like the logs, and encodable whatever was raised.

A plugin raises the contract's classes with any message and details it likes. Before they
reach the caller, the message and every string in ``details`` (keys too) pass through the
log masking (no answer carries a secret; of the registered ones, only the calling project's
and the service's are looked for), and what JSON cannot hold (a set, a datetime, an
object, a message that is not a string) is dropped with a log line naming the plugin: the
caller keeps the error's code, with the class's own message and without ``details``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from lowcode_runtime import envelope, errors, events
from lowcode_runtime.json_check import first_non_json
from lowcode_runtime.keys import PLUGIN_ROUTES, TYPE_REGISTRY
from lowcode_runtime.logs import logger
from lowcode_runtime.masking import mask_answer

MAX_DETAILS_DEPTH = 64
"""Details nested deeper are dropped: no caller reads them, and masking them would recurse."""


class _TooDeep(Exception):
    pass


def error_answer(
    request: web.Request, error: errors.RuntimeBackendError
) -> web.Response:
    """The envelope of ``error``; never fails, and never carries a secret."""
    error = on_the_table(request, error)
    problem = None if isinstance(error.message, str) else "its message is not a string"
    project_id = request.match_info.get("projectId")
    answered = _masked(error, problem is not None, project_id)
    if problem is None:
        try:
            return envelope.error_response(request, answered)
        except (TypeError, ValueError, RecursionError):
            problem = _what_does_not_encode(answered)

    _log_dropped(request, error, problem)
    plain = _copy(answered)
    plain.details = None
    plain.meta = None
    if not isinstance(plain.message, str):
        plain.message = type(error).default_message
    return envelope.error_response(request, plain)


def on_the_table(
    request: web.Request, error: errors.RuntimeBackendError
) -> errors.RuntimeBackendError:
    """``error`` as the caller gets it: itself when API.md's table pairs its code and status.

    The one mapping of an error to a contract pair: the answer, the call's log line and the
    ``datasource_call_finished`` hook all take it from here, so they agree. The same error may
    pass twice (the execute route logs it, then the middleware answers it); it is logged once.
    """
    if (error.code, error.status) in errors.CONTRACT_PAIRS:
        return error
    return _on_the_table(request, error)


def _on_the_table(
    request: web.Request, error: errors.RuntimeBackendError
) -> errors.RuntimeBackendError:
    """``error`` with the code and status of its nearest contract class, logged once a class.

    A subclass setting a code or a status of its own would answer outside API.md's table.
    """
    base = errors.contract_base(type(error))
    fixed = _copy(error)
    fixed.code, fixed.status = base.code, base.status
    if type(error) not in _REPORTED:
        _REPORTED.add(type(error))
        _log_off_table(request, error, base)
    return fixed


_REPORTED: set[type] = set()
"""Error classes already logged as answering off the table: one line each is enough."""


def _masked(
    error: errors.RuntimeBackendError, bad_message: bool, project_id: str | None
) -> errors.RuntimeBackendError:
    """A copy of ``error`` with its texts masked, or ``error`` itself when none needs it."""

    def mask(text: str) -> str:
        return mask_answer(text, project_id)

    message = error.message
    # The class's own message is the core's text: "missing bearer token" is no secret.
    own = bad_message or message == type(error).default_message
    texts = [] if own else [message]
    try:
        _strings(error.details, texts, 0)
    except _TooDeep:
        texts = []
    if not texts or mask(joined := "\n".join(texts)) == joined:
        return error

    masked = _copy(error)
    if not own:
        masked.message = mask(message)
    try:
        masked.details = _mask_leaves(error.details, 0, mask)
    except _TooDeep:
        masked.details = None
    return masked


def _strings(value: Any, found: list[str], depth: int) -> None:
    if depth > MAX_DETAILS_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings(key, found, depth + 1)
            _strings(item, found, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, found, depth + 1)


def _mask_leaves(value: Any, depth: int, mask: Callable[[str], str]) -> Any:
    if depth > MAX_DETAILS_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        # Keys too: a plugin may key its details by a token or a user's address.
        return {
            _mask_leaves(key, depth + 1, mask): _mask_leaves(item, depth + 1, mask)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_leaves(item, depth + 1, mask) for item in value]
    return value


def _copy(error: errors.RuntimeBackendError) -> errors.RuntimeBackendError:
    """The same error with its own attributes; no ``__init__`` runs (subclasses differ)."""
    copied = type(error).__new__(type(error))
    copied.__dict__.update(error.__dict__)
    return copied


def _what_does_not_encode(error: errors.RuntimeBackendError) -> str:
    what = first_non_json(error.details, "details") or first_non_json(
        error.meta, "meta"
    )
    return what or "its details do not encode as JSON"


def _log_off_table(
    request: web.Request,
    error: errors.RuntimeBackendError,
    base: type[errors.RuntimeBackendError],
) -> None:
    plugin, raiser = _raiser(request)
    logger.bind(event=events.PLUGIN_BAD_ERROR, plugin=plugin, code=error.code).error(
        f"{raiser} raised {type(error).__name__} with code {error.code!r} and status "
        f"{error.status}, which the contract does not pair; answered as {base.code} "
        f"{base.status} (its class {base.__name__}), and so is every later one"
    )


def _raiser(request: web.Request) -> tuple[str | None, str]:
    """The plugin to blame for an error, and how to name it in a log line."""
    call = request.get(envelope.CALL_META) or {}
    registered = request.app[TYPE_REGISTRY].get(call.get("type", ""))
    if registered is not None:
        raiser = (
            f"the plugin {registered.plugin.name} {registered.plugin.version} "
            f"(dataSource type {call['type']!r})"
        )
        return registered.plugin.name, raiser
    route = request.app.get(PLUGIN_ROUTES, {}).get(request.match_info.route)
    if route is not None:
        return route.plugin.name, f"the plugin {route.owner()}"
    return None, f"the route {request.method} {request.path}"


def _log_dropped(
    request: web.Request, error: errors.RuntimeBackendError, problem: str
) -> None:
    plugin, raiser = _raiser(request)
    logger.bind(event=events.PLUGIN_BAD_ERROR, plugin=plugin, code=error.code).error(
        f"{raiser} raised {type(error).__name__} that cannot be answered as is: {problem}; "
        "answered with the class's message and no details"
    )
