"""The plugin manager and the registry of dataSource types built from it once at start-up.

Every plugin, built-in or third party, arrives through the entry-point group
``lowcode_runtime.plugins``. A plugin that fails to import is logged and skipped; two plugins
that claim one type name stop start-up.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, cast

import pluggy

from lowcode_runtime import __version__, events, hookspecs
from lowcode_runtime.logs import logger
from lowcode_runtime.masking import mask
from lowcode_runtime.types import DataSourceType, PluginInfo

ENTRY_POINT_GROUP = "lowcode_runtime.plugins"
TRACE_HOOKS_ENV = "LOWCODE_TRACE_HOOKS"
CORE_INFO = PluginInfo(name="lowcode-runtime", version=__version__)
# A failed plugin's reason fits one line of `plugins`; the log has the whole traceback.
MAX_REASON_CHARS = 400


class PluginError(Exception):
    """A plugin contributes something the service cannot run; start-up stops (exit 1)."""


class PluginConflict(PluginError):
    """Two plugins claim one dataSource type name."""


@dataclass(frozen=True)
class RegisteredType:
    type: DataSourceType
    plugin: PluginInfo


@dataclass(frozen=True)
class LoadFailure:
    """An entry point that did not load: its name, its distribution and a one-line reason."""

    entry_point: str
    plugin: PluginInfo
    reason: str


def one_line_reason(error: BaseException) -> str:
    """``ImportError: No module named 'x'``: the class and the message on one line, masked.

    Every line is kept (joined with ``; ``): pluggy puts the cause of a refused hookimpl on
    its last line, after the plugin's and the hook's names.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    name = type(error).__name__
    # Masked before it is cut, so that no cut secret escapes the masking.
    reason = mask(f"{name}: {'; '.join(lines)}" if lines else name)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return reason


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which distribution each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, PluginInfo] = {}
        self.load_failures: list[LoadFailure] = []

    def register_plugin(self, plugin: Any, name: str, info: PluginInfo) -> None:
        self.register(plugin, name=name)
        self.distributions[name] = info

    def info_for(self, plugin: Any) -> PluginInfo:
        name = self.get_name(plugin)
        return self.distributions.get(name or "", CORE_INFO)


def load_entry_point_plugins(pm: PluginManager, group: str = ENTRY_POINT_GROUP) -> None:
    """Import and register each plugin of ``group``; a broken one is logged and skipped."""
    for entry_point in metadata.entry_points(group=group):
        if pm.has_plugin(entry_point.name) or pm.is_blocked(entry_point.name):
            continue
        dist = entry_point.dist
        info = PluginInfo(
            name=dist.metadata["Name"] if dist else entry_point.name,
            version=dist.version if dist else "unknown",
        )
        try:
            plugin = entry_point.load()
            pm.register_plugin(plugin, entry_point.name, info)
        except Exception as e:
            pm.load_failures.append(
                LoadFailure(entry_point.name, info, one_line_reason(e))
            )
            logger.bind(
                event=events.PLUGIN_LOAD_FAILED,
                plugin=entry_point.name,
                distribution=info.name,
            ).opt(exception=e).error(
                f"plugin {entry_point.name!r} failed to load and is skipped"
            )
            continue
        logger.bind(
            event=events.PLUGIN_LOADED,
            plugin=entry_point.name,
            distribution=info.name,
            version=info.version,
        ).debug(f"plugin {entry_point.name!r} loaded")


def build_plugin_manager(
    load_entry_points: bool = True, extra_plugins: Iterable[tuple[str, Any]] = ()
) -> PluginManager:
    """Create the manager, register the core's defaults, load entry points, then extras.

    ``extra_plugins`` are ``(name, plugin)`` pairs, mainly for tests.
    """
    from lowcode_runtime import default_secrets

    pm = PluginManager()
    pm.register_plugin(default_secrets, "lowcode_runtime.default_secrets", CORE_INFO)

    if load_entry_points:
        load_entry_point_plugins(pm)
    for name, plugin in extra_plugins:
        pm.register_plugin(plugin, name, CORE_INFO)
    pm.check_pending()

    if os.environ.get(TRACE_HOOKS_ENV):
        _trace_hook_calls(pm)
    return pm


def _trace_hook_calls(pm: PluginManager) -> None:
    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        names = [impl.plugin_name for impl in impls]
        logger.bind(event=events.HOOK_CALL, hook=hook_name, plugins=names).debug(
            "hook call"
        )

    def after(*_: Any) -> None:
        return None

    pm.add_hookcall_monitoring(before, after)


def _is_async(handler: Any) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - an object with async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def build_type_registry(pm: PluginManager) -> dict[str, RegisteredType]:
    """Gather every plugin's types once; a name claimed twice raises :class:`PluginConflict`."""
    registry: dict[str, RegisteredType] = {}

    for impl in pm.hook.register_datasource_types.get_hookimpls():
        info = pm.info_for(impl.plugin)
        contributed = cast(list[DataSourceType], impl.function() or [])
        for ds_type in contributed:
            if ds_type.name in registry:
                other = registry[ds_type.name].plugin
                raise PluginConflict(
                    f"dataSource type {ds_type.name!r} is claimed by both {other.name!r} "
                    f"and {info.name!r} ({impl.plugin_name}); uninstall one of them"
                )
            if not _is_async(ds_type.handler):
                raise PluginError(
                    f"the handler of dataSource type {ds_type.name!r} ({info.name}) must be "
                    "an async function"
                )
            registry[ds_type.name] = RegisteredType(ds_type, info)

    return registry
