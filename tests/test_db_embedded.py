"""The embedded PostgreSQL used when DATABASE_URL is unset: starts in its folder, answers, stops."""

from __future__ import annotations

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
    finally:
        stop_embedded(server)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=3)
