"""What makes a plugin unusable, found while it loads, so that it is skipped and not run.

Each check returns a one-line reason (``None`` when the plugin passes); ``plugins.py`` logs the
reason, lists the plugin under ``failed`` and leaves it out. Observer hooks are wrapped here
too, so that one raising is logged and does not fail the call it observes.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import pluggy
from marshmallow import Schema

from lowcode_runtime import events
from lowcode_runtime.logs import logger
from lowcode_runtime.types import DataSourceType

AWAITABLE_HOOKS = frozenset(
    {"runtime_startup", "runtime_shutdown", "runtime_readiness"}
)
"""Hooks whose implementation may be ``async def``: the core awaits what they return."""

OBSERVER_HOOKS = frozenset(
    {"datasource_call_started", "datasource_call_finished", "migration_applied"}
)
"""Hooks that only watch: an exception in one is logged, and what it watched goes on."""

MAX_NAME_LENGTH = 100
"""The execute route takes ``type`` and ``operation`` of 1 to 100 characters."""

TYPE_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}")


def no_hook(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """A plugin that implements no hook at all: most often its functions lack ``@hookimpl``."""
    if pm.get_hookcallers(plugin):
        return None
    unmarked = sorted(
        name
        for name in dir(pm.hook)
        if not name.startswith("_") and hasattr(plugin, name)
    )
    if unmarked:
        verb = "lacks" if len(unmarked) == 1 else "lack"
        return (
            f"it implements no hook of lowcode_runtime: {', '.join(unmarked)} {verb} "
            "@lowcode_runtime.hookimpl"
        )
    return (
        "it implements no hook of lowcode_runtime: mark its hook functions with "
        "@lowcode_runtime.hookimpl"
    )


def unknown_hook(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """A ``@hookimpl`` that names no hook of the project (pluggy's ``check_pending``)."""
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                return f"it implements {caller.name!r}, which is not a hook of lowcode_runtime"
    return None


def async_sync_hook(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """An ``async def`` implementation of a synchronous hook, whose coroutine none awaits."""
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.name in AWAITABLE_HOOKS:
            continue
        for impl in caller.get_hookimpls():
            function = impl.function
            if impl.plugin is plugin and (
                inspect.iscoroutinefunction(function)
                or inspect.isasyncgenfunction(function)
            ):
                return (
                    f"its {caller.name} is async def, but the hook is synchronous and its "
                    "coroutine would never be awaited; make it a plain def"
                )
    return None


def _not_a_schema(value: Any) -> str:
    if isinstance(value, type) and issubclass(value, Schema):
        return f"is the Schema class {value.__name__}, not an instance: pass {value.__name__}()"
    return "is not a marshmallow Schema"


def contribution_problem(contributed: Any) -> str | None:
    """What is wrong with what ``register_datasource_types`` returned, or None."""
    if contributed is None:
        return None
    if not isinstance(contributed, list | tuple):
        return (
            f"register_datasource_types returned a {type(contributed).__name__}; it must "
            "return a list of DataSourceType"
        )
    for ds_type in contributed:
        problem = type_problem(ds_type)
        if problem is not None:
            return problem
    return None


def type_problem(ds_type: Any) -> str | None:
    """Why the execute route could not serve this type, or None."""
    if not isinstance(ds_type, DataSourceType):
        return (
            f"register_datasource_types returned a {type(ds_type).__name__} in its list; "
            "each item must be a DataSourceType"
        )
    name = ds_type.name
    if not isinstance(name, str) or not TYPE_NAME.fullmatch(name):
        return (
            f"dataSource type name {name!r} is not usable: use 1 to {MAX_NAME_LENGTH} "
            "letters, digits, '_', '.' or '-', starting with a letter or a digit"
        )
    if not isinstance(ds_type.definition_schema, Schema):
        what = f"the definition_schema of dataSource type {name!r}"
        return f"{what} {_not_a_schema(ds_type.definition_schema)}"
    if not isinstance(ds_type.operations, Mapping):
        return f"the operations of dataSource type {name!r} are not a mapping"
    for operation, schema in ds_type.operations.items():
        if not isinstance(operation, str) or not 1 <= len(operation) <= MAX_NAME_LENGTH:
            return (
                f"dataSource type {name!r} has an operation named {operation!r}; names are "
                f"strings of 1 to {MAX_NAME_LENGTH} characters"
            )
        if not isinstance(schema, Schema):
            what = f"the params schema of {name}.{operation}"
            return f"{what} {_not_a_schema(schema)}"
    if not _is_async(ds_type.handler):
        return f"the handler of dataSource type {name!r} must be an async function"
    if not isinstance(ds_type.cancels_promptly, bool):
        return f"the cancels_promptly of dataSource type {name!r} must be True or False"
    return None


def _is_async(handler: Any) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - an object with async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def guard_observers(
    pm: pluggy.PluginManager, owner: Callable[[object], tuple[str, str]]
) -> None:
    """Wrap each implementation of an observer hook, once, so that it cannot raise.

    pluggy still makes the call (and traces it); the wrapper only catches what escapes.
    ``owner(plugin)`` gives the plugin's distribution (the line's ``plugin`` field) and a
    name of it for the message, asked when a line is written.
    """
    for name in OBSERVER_HOOKS:
        for impl in getattr(pm.hook, name).get_hookimpls():
            if not getattr(impl.function, "_lowcode_guarded", False):
                impl.function = _guarded(impl.function, name, impl.plugin, owner)


def _guarded(
    function: Callable[..., Any],
    hook: str,
    plugin: object,
    owner: Callable[[object], tuple[str, str]],
) -> Callable[..., Any]:
    def guarded(*args: Any) -> Any:
        try:
            return function(*args)
        except BaseException as e:  # an observer must not fail what it observes
            distribution, name = owner(plugin)
            logger.bind(
                event=events.PLUGIN_HOOK_FAILED, plugin=distribution, hook=hook
            ).opt(exception=e).error(
                f"the {hook} hook of {name} raised {type(e).__name__}; ignored"
            )
            return None

    guarded._lowcode_guarded = True  # type: ignore[attr-defined]
    return guarded
