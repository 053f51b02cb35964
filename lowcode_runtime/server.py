"""Running the service: one process with aiohttp's runner, or N workers under gunicorn.

Either way SIGTERM drains: the listening socket closes, in-flight requests get a grace period
to finish, then the shutdown hooks close the pools, and the process exits 0. What must exist
once per service and not once per worker is made here, before any worker starts: the
generated token (by the command line) and the embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.util
import math
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from aiohttp import web
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer
from gunicorn.glogging import Logger as GunicornLogger

from lowcode_runtime import events, metrics
from lowcode_runtime.app import create_app
from lowcode_runtime.config import ConfigError, Settings
from lowcode_runtime.logs import StdlibToLoguru, flush_logs, logger
from lowcode_runtime.plugins import PluginError, PluginManager, build_type_registry

SHUTDOWN_GRACE_S = 25.0
"""How long in-flight requests may run after SIGTERM; below the usual 30 s of orchestrators."""

WORKER_CLASSES = {
    "uvloop": "aiohttp.GunicornUVLoopWebWorker",
    "asyncio": "aiohttp.GunicornWebWorker",
}


def event_loop_name(settings: Settings) -> str:
    """The loop the service runs on: ``RUNTIME_BACKEND_EVENT_LOOP``, asyncio's if uvloop is
    not installed (it has no Windows build)."""
    if settings.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return "asyncio"
    return settings.event_loop


def _new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def serve(
    settings: Settings,
    pm: PluginManager,
    workers: int = 1,
    grace_s: float = SHUTDOWN_GRACE_S,
) -> int:
    """Serve until SIGTERM or SIGINT, then drain; returns the process exit code."""
    # A conflict between plugins stops start-up here, once, not in every worker.
    build_type_registry(pm)
    _warn_about_process_local_state(settings, workers)
    loop = event_loop_name(settings)
    logger.bind(
        event=events.SERVICE_STARTING,
        host=settings.host,
        port=settings.port,
        workers=workers,
        eventLoop=loop,
    ).info(f"lowcode-runtime starting with {workers} worker(s) on {loop}'s event loop")

    with ExitStack() as stack:
        try:
            settings = stack.enter_context(service_resources(settings, pm))
        except Exception as e:
            # A variable's value it cannot take says all in its message; no traceback.
            trace = None if isinstance(e, ConfigError) else e
            logger.bind(event=events.SERVICE_RESOURCE_FAILED).opt(
                exception=trace
            ).error(f"a service resource did not start: {e}")
            return 1
        if workers == 1:
            factory = functools.partial(_new_event_loop, loop)
            with asyncio.Runner(loop_factory=factory) as runner:
                code = runner.run(_serve_one(settings, pm, grace_s))
        else:
            code = _serve_workers(settings, pm, workers, grace_s, WORKER_CLASSES[loop])

    logger.bind(event=events.SERVICE_STOPPED, exitCode=code).info(
        "lowcode-runtime stopped"
    )
    return code


def _warn_about_process_local_state(settings: Settings, workers: int) -> None:
    if workers > 1 and not settings.redis_url:
        logger.bind(event=events.CONFIG_WARNING, workers=workers).warning(
            f"REDIS_URL is not set: with {workers} workers, rate limits and the secrets cache "
            "are per process (each worker allows RUNTIME_BACKEND_RATE_LIMIT_MAX on its own)"
        )


@contextmanager
def service_resources(settings: Settings, pm: PluginManager) -> Iterator[Settings]:
    """Enter every plugin's service-wide resource; yields the settings they amend.

    Entered before the server (so every worker, and a single process alike, sees the same
    resource) and exited after the last worker has stopped.
    """
    with ExitStack() as stack:
        for resource in pm.hook.runtime_service_resources(settings=settings):
            if resource is not None:
                settings = settings.replace(**(stack.enter_context(resource) or {}))
        yield settings


# --- one process ---------------------------------------------------------------------------


async def _serve_one(settings: Settings, pm: PluginManager, grace_s: float) -> int:
    app = create_app(settings, pm)
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=grace_s, handle_signals=False
    )
    await runner.setup()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        freeze_start_up_objects()
        _log_listening(settings, runner.addresses)
        await stop.wait()
        _log_stopping(grace_s)
        # A second signal does not wait for the drain: an operator's way out.
        draining = asyncio.current_task()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _stop_now, draining)
    finally:
        # Closes the socket, waits for in-flight requests, then runs the shutdown hooks.
        try:
            await runner.cleanup()
        except asyncio.CancelledError:
            return EXIT_FORCED
    return 0


EXIT_FORCED = 1
"""The exit code of a service stopped by a second signal, before its drain ended."""


def _stop_now(draining: asyncio.Task[Any] | None) -> None:
    logger.bind(event=events.SERVICE_STOPPING, forced=True, pid=os.getpid()).warning(
        "a second signal: stopping now, without waiting for the requests in flight"
    )
    if draining is not None:
        draining.cancel()


def freeze_start_up_objects() -> None:
    """Keep what start-up built (modules, schemas, the app) out of every later collection.

    The collector's full passes otherwise walk all of it again and again under load: each
    pause lands on the requests in flight, as their p99.
    """
    gc.collect()
    gc.freeze()


def _log_listening(settings: Settings, addresses: list[Any]) -> None:
    port = addresses[0][1] if addresses else settings.port
    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    logger.bind(
        event=events.SERVICE_STARTED,
        host=settings.host,
        port=port,
        pid=os.getpid(),
        eventLoop=loop,
    ).info(f"lowcode-runtime listening on http://{_url_host(settings.host)}:{port}")


def _url_host(host: str) -> str:
    """The host as a URL writes it: an IPv6 address in brackets (``[::1]``)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _log_stopping(grace_s: float) -> None:
    logger.bind(
        event=events.SERVICE_STOPPING, graceSeconds=grace_s, pid=os.getpid()
    ).info(f"stopping: no new connections, in-flight requests get {grace_s:g} s")


# --- several workers under gunicorn --------------------------------------------------------


def _serve_workers(
    settings: Settings,
    pm: PluginManager,
    workers: int,
    grace_s: float,
    worker_class: str,
) -> int:
    """gunicorn's arbiter forks ``workers`` aiohttp workers that share one listening socket.

    The workers inherit ``settings`` and ``pm`` through the fork; each builds its own app (and
    its own pools) after it, since sockets and event loops do not survive a fork.
    """

    async def app_factory() -> web.Application:
        app = create_app(settings, pm)
        app.on_startup[:] = [_boot_or_refuse(hook) for hook in app.on_startup]

        async def announce(app: web.Application) -> None:
            logger.bind(
                event=events.SERVICE_STARTED, pid=os.getpid(), worker=True
            ).info(
                f"worker {os.getpid()} serving on http://{settings.host}:{settings.port}"
            )

        async def farewell(app: web.Application) -> None:
            _log_stopping(grace_s)

        async def freeze(app: web.Application) -> None:
            freeze_start_up_objects()

        app.on_startup.append(announce)
        app.on_startup.append(freeze)
        app.on_shutdown.append(farewell)
        return app

    options = {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": workers,
        "worker_class": worker_class,
        # aiohttp's worker gives in-flight requests 95 % of it; the arbiter kills after it all.
        "graceful_timeout": math.ceil(grace_s / 0.95),
        "loglevel": "debug"
        if settings.log_level in ("trace", "debug")
        else settings.log_level,
        "logger_class": LoguruGunicornLogger,
        "accesslog": None,
        "errorlog": "-",
        "proc_name": "lowcode-runtime",
        "preload_app": False,
        # Several services on one host would share its default path under $HOME.
        "control_socket_disable": True,
    }
    master = os.getpid()
    metrics_dir = tempfile.TemporaryDirectory(prefix="lowcode-metrics-")
    metrics.enable_multiprocess(metrics_dir.name)
    try:
        WorkersApplication(app_factory, options).run()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except HaltServer as e:
        # Raised past gunicorn's own handler when a second worker fails while it halts.
        code = e.exit_status
    else:
        code = 0
    if os.getpid() == master and code == Arbiter.WORKER_BOOT_ERROR:
        logger.bind(event=events.SERVICE_RESOURCE_FAILED, workers=workers).error(
            "a worker failed to start, so the service does not serve (its line says why)"
        )
        code = 1  # a start-up failure, as with one worker

    if os.getpid() != master:
        # A worker leaves through here too, as the fork returned into the arbiter's run(). It
        # must not run the master's clean-up nor its exit hooks (which would stop the embedded
        # PostgreSQL): its own app has already been drained and closed.
        flush_logs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    metrics_dir.cleanup()
    return code


def _boot_or_refuse(
    hook: Callable[[web.Application], Awaitable[object]],
) -> Callable[[web.Application], Awaitable[None]]:
    """A start-up hook of a worker's app; a plugin that refuses to start ends the worker.

    One ``plugin.refused`` line, as with one worker, then gunicorn's boot-error exit, which
    halts the arbiter: raised on, the error would be logged by gunicorn with its traceback.
    """

    async def boot(app: web.Application) -> None:
        try:
            await hook(app)
        except PluginError as e:
            logger.bind(event=events.PLUGIN_REFUSED, pid=os.getpid()).error(str(e))
            flush_logs()
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None

    return boot


class WorkersApplication(BaseApplication):
    """A gunicorn application configured in code, not from gunicorn's command line."""

    def __init__(
        self, factory: Callable[[], Awaitable[web.Application]], options: dict[str, Any]
    ) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[[], Awaitable[web.Application]]:
        return self.factory


class LoguruGunicornLogger(GunicornLogger):
    """gunicorn's logger with its error log (master and workers) routed to loguru."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.addHandler(StdlibToLoguru())
