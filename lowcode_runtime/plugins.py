"""The plugin manager and the registry of dataSource types built from it once at start-up.

Every plugin, built-in or third party, arrives through the entry-point group
``lowcode_runtime.plugins``. A plugin that fails to import, to register, or to contribute
types the core can serve is logged and skipped; two plugins that claim one type name stop
start-up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, cast

import pluggy

from lowcode_runtime import __version__, events, hookspecs, plugin_checks
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
    entry_point: str = ""


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
        self.traced = False  # hook calls are logged (LOWCODE_TRACE_HOOKS)

    def implemented(self, hook: pluggy.HookCaller) -> bool:
        """Whether calling ``hook`` reaches anyone: a call that reaches none costs about 1 µs,
        the check a tenth of it, on every dataSource call. A traced call is always made."""
        return self.traced or bool(hook.get_hookimpls())

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
        except Exception as e:
            skip_plugin(pm, entry_point.name, info, _load_reason(entry_point, e), e)
            continue
        if admit_plugin(pm, plugin, entry_point.name, info):
            logger.bind(
                event=events.PLUGIN_LOADED,
                plugin=entry_point.name,
                distribution=info.name,
                version=info.version,
            ).debug(f"plugin {entry_point.name!r} loaded")


def _load_reason(entry_point: metadata.EntryPoint, error: Exception) -> str:
    """Why an entry point did not load; a module it names that is missing is said so, apart
    from a module the plugin itself imports."""
    module = entry_point.module
    if (
        isinstance(error, ModuleNotFoundError)
        and error.name
        and (module == error.name or module.startswith(f"{error.name}."))
    ):
        return (
            f"its entry point {entry_point.name} = {entry_point.value!r} names module "
            f"{error.name!r}, which is not installed: fix the entry point or install it"
        )
    return one_line_reason(error)


def admit_plugin(pm: PluginManager, plugin: Any, name: str, info: PluginInfo) -> bool:
    """Register ``plugin`` if pluggy and the core can run it; else skip it, logged."""
    try:
        pm.register_plugin(plugin, name, info)
    except Exception as e:
        skip_plugin(pm, name, info, one_line_reason(e), e)
        return False

    reason = (
        plugin_checks.no_hook(pm, plugin)
        or plugin_checks.unknown_hook(pm, plugin)
        or plugin_checks.async_sync_hook(pm, plugin)
    )
    if reason is not None:
        skip_plugin(pm, name, info, reason)
        return False
    return True


def skip_plugin(
    pm: PluginManager,
    name: str,
    info: PluginInfo,
    reason: str,
    error: BaseException | None = None,
) -> None:
    """Leave a plugin out: unregistered, listed as failed, logged once with the reason."""
    if pm.has_plugin(name):
        pm.unregister(name=name)
    pm.load_failures.append(LoadFailure(name, info, mask(reason)))
    logger.bind(
        event=events.PLUGIN_LOAD_FAILED,
        plugin=name,
        distribution=info.name,
        version=info.version,
        reason=reason,
    ).opt(exception=error).error(
        f"plugin {name!r} ({info.name} {info.version}) failed to load and is skipped: "
        f"{reason}"
    )


def build_plugin_manager(
    load_entry_points: bool = True, extra_plugins: Iterable[tuple[str, Any]] = ()
) -> PluginManager:
    """Create the manager, register the core's defaults, load entry points, then extras.

    ``extra_plugins`` are ``(name, plugin)`` pairs, mainly for tests; they are checked and
    skipped like any other.
    """
    from lowcode_runtime import default_secrets

    pm = PluginManager()
    pm.register_plugin(default_secrets, "lowcode_runtime.default_secrets", CORE_INFO)

    if load_entry_points:
        load_entry_point_plugins(pm)
    for name, plugin in extra_plugins:
        admit_plugin(pm, plugin, name, CORE_INFO)
    pm.check_pending()
    plugin_checks.guard_observers(pm, lambda plugin: _owner(pm, plugin))

    if os.environ.get(TRACE_HOOKS_ENV):
        _trace_hook_calls(pm)
    return pm


def _owner(pm: PluginManager, plugin: Any) -> tuple[str, str]:
    """The plugin's distribution, and a name of it for messages."""
    info = pm.info_for(plugin)
    return info.name, f"{info.name} {info.version} ({pm.get_name(plugin)})"


def _trace_hook_calls(pm: PluginManager) -> None:
    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        _log_hook_call(hook_name, [impl.plugin_name for impl in impls])

    def after(*_: Any) -> None:
        return None

    pm.add_hookcall_monitoring(before, after)
    pm.traced = True


def _log_hook_call(hook_name: str, plugins: list[str]) -> None:
    logger.bind(event=events.HOOK_CALL, hook=hook_name, plugins=plugins).debug(
        "hook call"
    )


def build_type_registry(pm: PluginManager) -> dict[str, RegisteredType]:
    """Gather every plugin's types once; a name claimed twice raises :class:`PluginConflict`.

    A plugin whose hook raises or returns what the core cannot serve is skipped, so the
    next build does not see it.
    """
    registry: dict[str, RegisteredType] = {}
    impls = pm.hook.register_datasource_types.get_hookimpls()
    if os.environ.get(TRACE_HOOKS_ENV):
        # Called one plugin at a time, past pluggy's monitoring: traced here instead.
        _log_hook_call("register_datasource_types", [i.plugin_name for i in impls])

    for impl in impls:
        info = pm.info_for(impl.plugin)
        try:
            contributed = impl.function()
        except Exception as e:
            skip_plugin(pm, impl.plugin_name, info, one_line_reason(e), e)
            continue
        problem = plugin_checks.contribution_problem(contributed)
        if problem is not None:
            skip_plugin(pm, impl.plugin_name, info, problem)
            continue

        for ds_type in cast(list[DataSourceType], contributed or []):
            if ds_type.name in registry:
                other = registry[ds_type.name].plugin
                raise PluginConflict(
                    f"dataSource type {ds_type.name!r} is claimed by both {other.name!r} "
                    f"and {info.name!r} ({impl.plugin_name}); uninstall one of them"
                )
            registry[ds_type.name] = RegisteredType(ds_type, info, impl.plugin_name)

    return registry
