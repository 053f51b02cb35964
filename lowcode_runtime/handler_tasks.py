"""Each handler runs in its own task, so that nothing it does can hold or break the request.

That holds for a dataSource type's handler and for the handler of a route a plugin adds,
except a type that says its handler ends at once when cancelled (``cancels_promptly``): that
one is awaited in the request's own task, which saves the task and the shield (about 13 µs).

The request awaits the handler's task through a shield: when the request is cancelled (its
deadline passed, the server is stopping) it answers at once, and the handler's task is
cancelled and left to end on its own. A handler that swallows its cancellation keeps running
as an orphan, held here (the event loop keeps only weak references to tasks), logged once,
and stopped at shutdown after a bounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from lowcode_runtime import errors, events
from lowcode_runtime.logs import logger
from lowcode_runtime.plugins import RegisteredType
from lowcode_runtime.types import Call, Result

OUTLIVED_AFTER_S = 1.0
"""How long a cancelled handler may take to clean up before it is logged as outliving it."""

SHUTDOWN_WAIT_S = 2.0
"""How long shutdown waits for cancelled handlers before it closes them."""

T = TypeVar("T")


class Orphans:
    """The cancelled handler tasks of one app that have not ended yet."""

    def __init__(self) -> None:
        # Each orphan with the names of its handler and of its plugin's distribution.
        self.tasks: dict[asyncio.Task[Any], tuple[str, str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The app's loop, asked for once: on Python 3.11 each ask is a getpid call."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
        return self._loop

    def adopt(self, task: asyncio.Task[Any], owner: str, plugin: str) -> None:
        """Cancel ``task`` and hold it until it ends; log it if it outlives its cancellation.

        ``owner`` names the handler in the log's message (see :func:`describe`), ``plugin``
        is its distribution's name, the log's ``plugin`` field as elsewhere.
        """
        self.tasks[task] = (owner, plugin)
        task.add_done_callback(self._forget)
        task.cancel()
        asyncio.get_running_loop().call_later(OUTLIVED_AFTER_S, self._check, task)

    def holds(self, task: asyncio.Task[object] | None) -> bool:
        return task in self.tasks

    def _forget(self, task: asyncio.Task[Any]) -> None:
        """Drop an ended orphan, its outcome read: nobody awaits it any more.

        Unread, asyncio would log "Task exception was never retrieved" when it is collected;
        a coroutine closed at shutdown ends in "cannot reuse already awaited coroutine".
        """
        self.tasks.pop(task, None)
        if not task.cancelled():
            task.exception()

    def _check(self, task: asyncio.Task[Any]) -> None:
        held = self.tasks.get(task)
        if held is not None:
            owner, plugin = held
            logger.bind(event=events.PLUGIN_HANDLER_OUTLIVED, plugin=plugin).warning(
                f"a handler of {owner} is still running {OUTLIVED_AFTER_S:g} s after its "
                "cancellation (it ignored it, or its clean-up is slow); it is stopped at "
                "shutdown at the latest"
            )

    async def stop(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Cancel what is left, wait at most ``wait_s``, then close what still runs."""
        if not self.tasks:
            return
        for task in self.tasks:
            task.cancel()
        await asyncio.wait(list(self.tasks), timeout=wait_s)

        for task, (owner, plugin) in list(self.tasks.items()):
            logger.bind(event=events.PLUGIN_HANDLER_OUTLIVED, plugin=plugin).error(
                f"a handler of {owner} still ran {wait_s:g} s after shutdown cancelled it; "
                "its coroutine is closed"
            )
            # Closing throws GeneratorExit where the coroutine waits, which a handler that
            # catches CancelledError does not catch; the cancel then ends the task itself.
            with contextlib.suppress(BaseException):
                task.get_coro().close()  # type: ignore[union-attr]
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=0.1)


ORPHANS = web.AppKey("handler_orphans", Orphans)


def setup_handler_tasks(app: web.Application) -> None:
    """Keep the app's orphans, and stop them as the app stops."""
    app[ORPHANS] = Orphans()

    async def stop_orphans(app: web.Application) -> None:
        await app[ORPHANS].stop()

    app.on_cleanup.insert(0, stop_orphans)


def describe(owner: RegisteredType) -> str:
    """``lowcode-kv 1.0 (dataSource type 'kv')``: who to blame, in a log line or a message."""
    return f"{owner.plugin.name} {owner.plugin.version} (dataSource type {owner.type.name!r})"


def run_handler(call: Call, owner: RegisteredType) -> Awaitable[Result]:
    """What to await for the call's result; a cancelled request answers without waiting.

    A type that ``cancels_promptly`` is trusted to end at once: its handler's own coroutine
    is awaited in the request's task (no level in between), and the caller passes what it
    raises through :func:`escaped_prompt_handler`. Any other runs in a task of its own.
    """
    if owner.type.cancels_promptly:
        return owner.type.handler(call)
    return await_contained(
        call.app, lambda: owner.type.handler(call), describe(owner), owner.plugin.name
    )


def escaped_prompt_handler(owner: RegisteredType, error: BaseException) -> bool:
    """Whether ``error``, raised by a handler awaited in the request's task, must not leave
    it (it is logged, and the caller answers INTERNAL).

    As in :func:`_contained`, only the core's cancellation passes: a ``CancelledError`` while
    nobody asked this task to stop (``Task.cancelling()`` is 0) is the handler's own.
    """
    if isinstance(error, Exception):
        return False
    if isinstance(error, asyncio.CancelledError) and _being_cancelled():
        return False
    _log_escape(owner.plugin.name, describe(owner), error)
    return True


def log_handler_fault(owner: RegisteredType, error: Exception) -> None:
    """Log an exception a handler raised that is none of the contract's, naming its plugin
    (the caller answers INTERNAL)."""
    _log_escape(owner.plugin.name, describe(owner), error)


def _being_cancelled() -> bool:
    """Whether someone (the deadline, the server stopping) asked the current task to stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def await_contained(
    app: web.Application, work: Callable[[], Awaitable[T]], owner: str, plugin: str
) -> T:
    """``await work()`` in a task of its own, held as an orphan if the request is cancelled.

    ``owner`` names the plugin's handler in log lines (``lowcode-kv 1.0 (dataSource type
    'kv')``), ``plugin`` is the distribution's name for the log's ``plugin`` field.
    """
    task = app[ORPHANS].loop().create_task(_contained(app, work, owner, plugin))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            app[ORPHANS].adopt(task, owner, plugin)
        raise


async def _contained(
    app: web.Application, work: Callable[[], Awaitable[T]], owner: str, plugin: str
) -> T:
    """The handler's task: what must not leave a task becomes ``INTERNAL`` here.

    ``KeyboardInterrupt`` and ``SystemExit`` would stop the event loop, and a
    ``CancelledError`` or ``GeneratorExit`` the handler raises itself would read as a
    cancelled request, which gets no answer. Only the core's own cancellation passes.
    """
    try:
        return await work()
    except Exception:
        raise
    except BaseException as e:
        if app[ORPHANS].holds(asyncio.current_task()):
            raise
        _log_escape(plugin, owner, e)
        raise errors.Internal() from None


def _log_escape(plugin: str, owner: str, error: BaseException) -> None:
    """Log, with its traceback, what a handler raised that must not leave its await."""
    logger.bind(event=events.HTTP_UNHANDLED, plugin=plugin).opt(exception=error).error(
        f"the handler of {owner} raised {type(error).__name__}"
    )
