"""The execute route: validate a call, run its type's handler within the deadline, log it.

Everything around a plugin's own work happens here once, for every type.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

import orjson
from aiohttp import web
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from lowcode_runtime import envelope, errors, events, metrics
from lowcode_runtime.error_answer import on_the_table
from lowcode_runtime.handler_tasks import (
    escaped_prompt_handler,
    log_handler_fault,
    run_handler,
)
from lowcode_runtime.json_check import first_non_json, result_shape_problem
from lowcode_runtime.keys import PLUGIN_MANAGER, SECRETS, SETTINGS, TYPE_REGISTRY
from lowcode_runtime.logs import debug_enabled, hot_line, logger
from lowcode_runtime.middleware import DEADLINE
from lowcode_runtime.requests import (
    MAX_NAME_LENGTH,
    is_printable_name,
    project_id_of,
    read_json_object,
    unprintable_name,
)
from lowcode_runtime.types import Call, DataSourceType, Result

EXECUTE_PATH = "/v1/projects/{projectId}/datasources/execute"


class DataSourceRefSchema(Schema):
    """The parts of a ``dataSource`` the core reads; the rest is its type's definition."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.Length(min=1, max=100))
    name = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=MAX_NAME_LENGTH),
            unprintable_name,
        ],
    )


class ExecuteRequestSchema(Schema):
    """Body of ``POST /v1/projects/{projectId}/datasources/execute``."""

    dataSource = fields.Nested(DataSourceRefSchema, required=True)
    operation = fields.String(required=True, validate=validate.Length(min=1, max=100))
    params = fields.Dict(load_default=dict)  # JSON object keys are strings already


_execute_schema = ExecuteRequestSchema()


def _load(schema: Schema, data: Any, prefix: str) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ValidationError as e:
        raise errors.ValidationFailed.from_messages(e.messages, prefix) from None


def canonical_json(value: Any) -> bytes | str:
    """One text per value (keys sorted): orjson's, or the standard library's where it fails.

    Either is valid JSON, and a JSON text reads back as one value only, so equal keys mean
    equal definitions, whichever wrote them.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))


MAX_CACHED_DEFINITION = 64 * 1024
"""Larger definitions are validated on every call, so the cache stays a few dozen MiB at most."""


class DefinitionCache:
    """Loaded definitions by type and canonical JSON, newest kept.

    A preview sends the same definition on every click; its schema runs once, and warm calls
    reuse the result. Handlers get the shared dict and must treat it as read-only.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, bytes | str], dict[str, Any]] = (
            OrderedDict()
        )

    def load(
        self,
        type_name: str,
        ds_type: DataSourceType,
        raw: dict[str, Any],
        problems: list[dict[str, str]],
    ) -> dict[str, Any]:
        key = (type_name, canonical_json(raw))
        loaded = self._entries.get(key)
        if loaded is not None:
            self._entries.move_to_end(key)
            return loaded

        found = len(problems)
        loaded = _collect(ds_type.definition_schema, raw, "dataSource", problems)
        if len(problems) == found and len(key[1]) <= MAX_CACHED_DEFINITION:
            self._entries[key] = loaded
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return loaded


DEFINITIONS = web.AppKey("definitions", DefinitionCache)


def _collect(
    schema: Schema, data: Any, prefix: str, problems: list[dict[str, str]]
) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ValidationError as e:
        problems.extend(errors.flatten_messages(e.messages, prefix))
        return {}


def _note_call_meta(request: web.Request, body: dict[str, Any]) -> None:
    """Where a refused body still names its dataSource, its answer's meta names it too."""
    source, operation = body.get("dataSource"), body.get("operation")
    if not isinstance(source, dict) or not isinstance(operation, str):
        return
    if isinstance(source.get("type"), str) and is_printable_name(source.get("name")):
        request[envelope.CALL_META] = {
            "dataSource": source["name"],
            "type": source["type"],
            "operation": operation,
        }


def _definition_problems(
    request: web.Request, body: dict[str, Any]
) -> list[dict[str, str]]:
    """What the definition's type finds wrong in it, for a body refused for another part:
    one answer lists every violation it can."""
    source = body.get("dataSource")
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        return []
    registered = request.app[TYPE_REGISTRY].get(source["type"])
    if registered is None:
        return []
    definition = {k: v for k, v in source.items() if k not in ("type", "name")}
    problems: list[dict[str, str]] = []
    request.app[DEFINITIONS].load(source["type"], registered.type, definition, problems)
    return problems


_BODY_KEYS = frozenset(ExecuteRequestSchema().fields)


def _short_text(value: Any, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest


def plainly_valid(body: dict[str, Any]) -> dict[str, Any] | None:
    """What :class:`ExecuteRequestSchema` loads from a body it plainly accepts, else None.

    Nearly every body is such a one; for them this skips the schema's machinery (a tenth of
    a warm call). Any other body goes through the schema, which says what is wrong. A test
    holds the two to the same answers.
    """
    source = body.get("dataSource")
    params = body.get("params", {})
    if (
        body.keys() <= _BODY_KEYS
        and isinstance(source, dict)
        and _short_text(source.get("type"), 100)
        and is_printable_name(source.get("name"))
        and _short_text(body.get("operation"), 100)
        and isinstance(params, dict)
    ):
        return {
            "dataSource": dict(source),
            "operation": body["operation"],
            "params": dict(params),
        }
    return None


def build_call(request: web.Request, project_id: str, body: dict[str, Any]) -> Call:
    """Validate the body, the definition and the params; the call a handler will receive."""
    try:
        loaded = plainly_valid(body) or _load(_execute_schema, body, "")
    except errors.ValidationFailed as e:
        _note_call_meta(request, body)
        found = _definition_problems(request, body)
        if found:
            raise errors.ValidationFailed.from_details([*e.details, *found]) from None
        raise
    definition = dict(loaded["dataSource"])
    type_name, name = definition.pop("type"), definition.pop("name")
    operation = loaded["operation"]
    request[envelope.CALL_META] = {
        "dataSource": name,
        "type": type_name,
        "operation": operation,
    }

    registry = request.app[TYPE_REGISTRY]
    registered = registry.get(type_name)
    if registered is None:
        known = ", ".join(sorted(registry)) or "none"
        raise errors.UnknownDataSourceType(
            f"no installed plugin handles dataSource type {type_name!r} (installed: {known})"
        )
    ds_type = registered.type
    params_schema = ds_type.operations.get(operation)
    if params_schema is None:
        raise errors.UnsupportedOperation(
            f"dataSource type {type_name!r} has no operation {operation!r} "
            f"(it has: {', '.join(ds_type.operations)})"
        )

    # Both parts are checked before answering, so the caller sees every violation at once.
    problems: list[dict[str, str]] = []
    loaded_definition = request.app[DEFINITIONS].load(
        type_name, ds_type, definition, problems
    )
    definition_ok = not problems
    loaded_params = _collect(params_schema, loaded["params"], "params", problems)
    if problems and definition_ok and ds_type.check_params is not None:
        problems.extend(
            ds_type.check_params(operation, loaded_definition, loaded["params"])
        )
    if problems:
        raise errors.ValidationFailed.from_details(problems)

    return Call(
        project_id=project_id,
        name=name,
        type=type_name,
        operation=operation,
        definition=loaded_definition,
        params=loaded_params,
        deadline=request[DEADLINE],
        trace_id=request[envelope.TRACE_ID],
        request_id=request[envelope.REQUEST_ID],
        settings=request.app[SETTINGS],
        app=request.app,
        secrets=request.app[SECRETS],
    )


async def execute(request: web.Request) -> web.Response:
    """Run one dataSource call and answer it in the envelope; log and count the outcome."""
    project_id = project_id_of(request)
    body = await read_json_object(request)
    started = time.monotonic()

    try:
        call = build_call(request, project_id, body)
    except errors.RuntimeBackendError as e:
        # A call whose type and name are known but whose definition or params are refused
        # still gets its error event, so a dashboard sees every failed call.
        if envelope.CALL_META in request:
            _record(
                request.app[TYPE_REGISTRY],
                project_id,
                request[envelope.CALL_META],
                on_the_table(request, e),
                started,
            )
        raise

    # Run here, not in a function of its own: each level awaited costs on every resume.
    pm = request.app[PLUGIN_MANAGER]
    hooks = pm.hook
    registered = request.app[TYPE_REGISTRY][call.type]
    meta = request[envelope.CALL_META]
    if debug_enabled():
        logger.bind(event=events.CALL_START, projectId=call.project_id, **meta).debug(
            f"{call.type}.{call.operation} {call.name!r} started"
        )
    if pm.implemented(hooks.datasource_call_started):
        hooks.datasource_call_started(call=call)
    error: errors.RuntimeBackendError | None = None

    try:
        try:
            result = await run_handler(call, registered)
        except errors.RuntimeBackendError:
            raise
        except Exception as e:
            log_handler_fault(registered, e)
            raise errors.Internal() from None
        except BaseException as e:
            if registered.type.cancels_promptly and escaped_prompt_handler(
                registered, e
            ):
                raise errors.Internal() from None
            raise
        if call.deadline.expired():
            # The handler swallowed its cancellation; the deadline still holds.
            raise errors.Timeout("the call did not finish within the request deadline")
        return respond(request, call, result)
    except errors.RuntimeBackendError as e:
        # Logged and reported with the code and status the caller gets, not a plugin's own.
        error = on_the_table(request, e)
        raise
    except BaseException:
        error = errors.Timeout() if call.deadline.expired() else errors.Internal()
        raise
    finally:
        duration_ms = _record(
            request.app[TYPE_REGISTRY], call.project_id, meta, error, started
        )
        if pm.implemented(hooks.datasource_call_finished):
            hooks.datasource_call_finished(
                call=call,
                outcome="error" if error else "success",
                error_code=error.code if error else None,
                duration_ms=duration_ms,
            )


def respond(request: web.Request, call: Call, result: Result) -> web.Response:
    """The envelope of a result; one that is not JSON is its plugin's bug, and named so."""
    shape = result_shape_problem(result)
    try:
        if shape is None:
            return envelope.ok_response(request, result.data, meta=result.meta)
    except (TypeError, ValueError, RecursionError):
        pass

    registered = request.app[TYPE_REGISTRY][call.type]
    plugin = f"{registered.plugin.name} {registered.plugin.version}"
    if shape is not None:
        problem = f"a result the core cannot answer: {shape}"
    else:
        what = first_non_json(result.data, "data") or first_non_json(
            result.meta, "meta"
        )
        problem = (
            f"a result that is not JSON-serialisable: {what or 'it does not encode'}"
        )
    message = (
        f"the plugin {plugin} (dataSource type {call.type!r}) returned {problem}; report "
        "this to the plugin's authors"
    )
    logger.bind(
        event=events.PLUGIN_BAD_RESULT,
        plugin=registered.plugin.name,
        type=call.type,
    ).error(message)
    raise errors.Internal(message) from None


def _known_labels(registry: dict[str, Any], meta: dict[str, str]) -> tuple[str, str]:
    """Type and operation as metric labels, or ``unknown``: callers must not grow /metrics."""
    registered = registry.get(meta["type"])
    if registered is None:
        return "unknown", "unknown"
    if meta["operation"] not in registered.type.operations:
        return meta["type"], "unknown"
    return meta["type"], meta["operation"]


def _record(
    registry: dict[str, Any],
    project_id: str,
    meta: dict[str, str],
    error: errors.RuntimeBackendError | None,
    started: float,
) -> float:
    """Emit the call's success or error event and its metrics; returns its duration."""
    duration_ms = round((time.monotonic() - started) * 1000, 3)
    outcome = "error" if error else "success"
    labels = (*_known_labels(registry, meta), outcome)
    metrics.child(metrics.CALLS, *labels).inc()
    metrics.child(metrics.CALL_DURATION, *labels).observe(duration_ms / 1000)

    what = f"{meta['type']}.{meta['operation']} {meta['dataSource']!r}"
    fields = {
        "event": events.CALL_ERROR if error else events.CALL_SUCCESS,
        "projectId": project_id,
        "durationMs": duration_ms,
        "status": outcome,
        **meta,
        "httpStatus": error.status if error else 200,
    }
    if error is None:
        hot_line("info", f"{what} succeeded", fields)
    else:
        fields["errorCode"] = error.code
        hot_line("warning", f"{what} failed: {error.code}: {error.message}", fields)
    return duration_ms
