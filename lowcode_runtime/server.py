"""Running the service: one process with aiohttp's runner, drained gracefully on SIGTERM."""

from __future__ import annotations

from aiohttp import web

from lowcode_runtime import events
from lowcode_runtime.app import create_app
from lowcode_runtime.config import Settings
from lowcode_runtime.logs import logger
from lowcode_runtime.plugins import PluginManager

SHUTDOWN_GRACE_S = 25.0


def serve(settings: Settings, pm: PluginManager, workers: int = 1) -> int:
    """Serve until SIGTERM/SIGINT; in-flight requests get ``SHUTDOWN_GRACE_S`` to finish."""
    app = create_app(settings, pm)

    async def announce(app: web.Application) -> None:
        logger.bind(
            event=events.SERVICE_STARTED, host=settings.host, port=settings.port
        ).info(f"lowcode-runtime listening on http://{settings.host}:{settings.port}")

    async def farewell(app: web.Application) -> None:
        logger.bind(event=events.SERVICE_STOPPING).info(
            "stopping: draining in-flight requests"
        )

    app.on_startup.append(announce)
    app.on_shutdown.append(farewell)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        handle_signals=True,
    )
    logger.bind(event=events.SERVICE_STOPPED).info("stopped")
    return 0
