"""The command line: ``python -m lowcode_runtime serve|plugins|...``.

Plugins add their own commands through ``register_commands`` (the db plugin adds ``migrate``
and ``status``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from lowcode_runtime import __version__, events
from lowcode_runtime.config import ConfigError, Settings, load_settings
from lowcode_runtime.logs import logger, setup_logging
from lowcode_runtime.masking import mask, register_secret
from lowcode_runtime.plugin_routes import add_plugin_routes
from lowcode_runtime.plugins import (
    PluginError,
    PluginManager,
    build_plugin_manager,
    build_type_registry,
    one_line_reason,
    skip_plugin,
)

EXIT_CONFIG = 2
MIN_TOKEN_LENGTH = 32
DESCRIPTION = """\
lowcode-runtime runs a low-code app's dataSources on the server, in preview mode, so that
project secrets never reach a browser. Configure it with environment variables (see
.env.example); a flag overrides its variable. With no configuration at all, `serve` starts an
embedded PostgreSQL and prints a generated service token once.
"""


def build_parser(pm: PluginManager) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lowcode_runtime",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"lowcode-runtime {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service until SIGTERM or Ctrl-C, then drain and stop.",
    )
    serve.add_argument("--host", help="bind address (HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="HTTP port (PORT, default 3001)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (default 1; set REDIS_URL to share limits)",
    )
    serve.set_defaults(func=run_serve)

    plugins = commands.add_parser(
        "plugins",
        help="list installed dataSource types",
        description=(
            "List each installed dataSource type, its operations and the distribution "
            "(name and version) that provides it; then each plugin that failed to load, "
            "with its reason."
        ),
    )
    plugins.add_argument("--json", action="store_true", help="print a JSON document")
    plugins.set_defaults(func=run_plugins)

    add_plugin_commands(pm, commands)
    return parser


def add_plugin_commands(
    pm: PluginManager, commands: argparse._SubParsersAction
) -> None:
    """Each plugin's ``register_commands``; one that raises is skipped, its commands removed."""
    for impl in reversed(pm.hook.register_commands.get_hookimpls()):
        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        before = set(commands.choices)
        try:
            pm.subset_hook_caller("register_commands", remove_plugins=others)(
                subparsers=commands
            )
        except Exception as e:
            added = set(commands.choices) - before
            for name in added:
                del commands.choices[name]
            # argparse keeps the help lines apart; the hook's own type is argparse's too.
            commands._choices_actions = [
                a for a in commands._choices_actions if a.dest not in added
            ]
            info = pm.info_for(impl.plugin)
            skip_plugin(pm, impl.plugin_name, info, one_line_reason(e), e)


def generate_token_if_missing(settings: Settings) -> Settings:
    """With no token configured, make one and log it in one line, the only line that holds it.

    The token, made or configured, is then masked like a secret in every later line: a
    plugin's error or a caller's URL may hold it without the word Bearer before it.
    """
    if settings.auth_token:
        if len(settings.auth_token) < MIN_TOKEN_LENGTH:
            logger.bind(event=events.CONFIG_WARNING).warning(
                f"RUNTIME_BACKEND_AUTH_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters; "
                "use a long random token outside of tests"
            )
        register_secret(settings.auth_token)
        return settings
    token = secrets.token_urlsafe(32)
    logger.bind(event=events.SERVICE_TOKEN_GENERATED, _unmasked=True).warning(
        f"RUNTIME_BACKEND_AUTH_TOKEN is not set; generated service token: {token}"
    )
    register_secret(token)  # after the line above, which was masked as it was logged
    return settings.replace(auth_token=token)


def run_serve(args: argparse.Namespace) -> int:
    from lowcode_runtime.server import serve

    if args.workers < 1:
        print("lowcode-runtime: --workers expects a positive integer", file=sys.stderr)
        return EXIT_CONFIG
    build_type_registry(
        args.plugin_manager
    )  # a plugin error stops us before the token line
    settings = generate_token_if_missing(args.settings)
    return serve(settings, args.plugin_manager, workers=args.workers)


def run_plugins(args: argparse.Namespace) -> int:
    """Each installed type with its distribution; then each plugin that failed to load."""
    pm = args.plugin_manager
    # Routes first: a plugin whose register_routes raises is skipped, types and all.
    add_plugin_routes(web.Application(), pm)
    registry = build_type_registry(pm)
    rows: list[dict[str, Any]] = [
        {
            "type": name,
            "operations": list(r.type.operations),
            "plugin": {"name": r.plugin.name, "version": r.plugin.version},
        }
        for name, r in sorted(registry.items())
    ]
    failed: list[dict[str, Any]] = [
        {
            "entryPoint": f.entry_point,
            "plugin": {"name": f.plugin.name, "version": f.plugin.version},
            "reason": f.reason,
        }
        for f in pm.load_failures
    ]
    if args.json:
        print(json.dumps({"types": rows, "failed": failed}, indent=2))
        return 0

    table = [
        (row["type"], ", ".join(row["operations"]), _distribution(row["plugin"]))
        for row in rows
    ] + [
        (
            f["entryPoint"],
            "(failed to load)",
            f"{_distribution(f['plugin'])}: {f['reason']}",
        )
        for f in failed
    ]
    print_columns(table)
    return 0


def _distribution(plugin: dict[str, str]) -> str:
    return f"{plugin['name']} {plugin['version']}"


def print_columns(table: Sequence[Sequence[str]]) -> None:
    """Rows in columns as wide as their widest cell (the last one as it comes)."""
    if not table:
        return
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(os.environ)
    except ConfigError:
        # A flag may still stand in for the bad variable; judged once the flags are parsed.
        settings = Settings()
    setup_logging(
        settings.log_level,
        settings.log_format,
        stream=sys.stderr if _wants_stdout_for_output(argv) else None,
    )

    pm = build_plugin_manager()
    args = build_parser(pm).parse_args(argv)

    overrides = {k: getattr(args, k, None) for k in ("host", "port")}
    try:
        args.settings = load_settings(os.environ, **overrides)
    except ConfigError as e:
        print(f"lowcode-runtime: {e}", file=sys.stderr)
        return EXIT_CONFIG
    args.plugin_manager = pm

    try:
        code = int(args.func(args) or 0)
        # Flushed here, so that a reader that went away is seen below and not at exit.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except PluginError as e:
        logger.bind(event=events.PLUGIN_REFUSED).error(str(e))
        print(f"lowcode-runtime: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        # One masked line for people; the traceback only at debug level, masked too.
        log = logger.bind(event=events.COMMAND_FAILED, command=args.command)
        log.opt(exception=e).debug("traceback of the failure")
        log.error(f"{args.command} failed: {type(e).__name__}: {e}")
        print(mask(f"lowcode-runtime: {args.command} failed: {e}"), file=sys.stderr)
        return 1


def _stdout_closed() -> int:
    """The reader of stdout went away (``plugins --json | head -1``): stop quietly.

    Python's documented idiom: point stdout at devnull so that the flush at exit does not
    raise again, and exit 1 as Python does on EPIPE.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def _wants_stdout_for_output(argv: list[str]) -> bool:
    """Commands that print a result keep stdout for it; their logs go to stderr."""
    return bool(argv) and argv[0] != "serve"
