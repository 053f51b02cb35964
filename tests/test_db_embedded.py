"""The embedded PostgreSQL used when DATABASE_URL is unset: starts in its folder, answers, stops."""

from __future__ import annotations

import os
import subprocess
import sys

import aiopg
import psycopg2
import pytest

from lowcode_db.embedded import default_data_dir, start_embedded, stop_embedded


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LOWCODE_DATA_DIR", raising=False)
    assert default_data_dir().parts[-2:] == (".lowcode-runtime", "postgres")
    monkeypatch.setenv("LOWCODE_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path / "postgres"


async def test_embedded_server_starts_answers_and_stops(tmp_path, logs):
    server, url = start_embedded(tmp_path / "postgres")
    try:
        async with aiopg.connect(url) as connection, connection.cursor() as cursor:
            await cursor.execute("SELECT 41 + 1")
            assert await cursor.fetchone() == (42,)
        started = logs.events("db.embedded_started")
        assert started and started[0]["dataDir"] == str(
            (tmp_path / "postgres").resolve()
        )
        assert started[0]["joined"] is False
    finally:
        stop_embedded(server)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=3)
    [stopped] = logs.events("db.embedded_stopped")
    assert (stopped["message"], stopped["running"]) == (
        "embedded PostgreSQL stopped",
        False,
    )


HOLDER = """
import sys
from lowcode_db.embedded import start_embedded
server, url = start_embedded(sys.argv[1])
print(url, flush=True)
sys.stdin.read()
"""


async def test_a_process_that_joined_the_server_leaves_it_running(tmp_path, logs):
    """A command beside ``serve`` uses serve's server: leaving it must not stop it."""
    folder = tmp_path / "postgres"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = holder.stdout.readline().strip()
        assert url, "the holding process did not start the server"

        server, _ = start_embedded(folder)
        stop_embedded(server)

        [joined] = logs.events("db.embedded_started")
        assert joined["joined"] is True and "joined" in joined["message"]

        [stopped] = logs.events("db.embedded_stopped")
        assert stopped["running"] is True
        assert stopped["message"] == (
            "embedded PostgreSQL left running for the other process using it"
        )
        psycopg2.connect(url, connect_timeout=3).close()
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=3)


def test_a_widened_runtime_folder_prints_no_plain_text_warning(tmp_path):
    """As root the package may open XDG_RUNTIME_DIR to its server's user (0755); platformdirs
    would then warn in plain text on every later start, where every line is JSON."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o755)
    runtime.chmod(0o755)
    script = (
        "import sys\n"
        "from lowcode_db.embedded import start_embedded, stop_embedded\n"
        "server, url = start_embedded(sys.argv[1])\n"
        "stop_embedded(server)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(tmp_path / "postgres")],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
