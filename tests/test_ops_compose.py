"""The development stack: the compose file's shape, and the preview role its init script makes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "infra" / "docker"
COMPOSE = DOCKER / "docker-compose.dev.yml"
INIT = DOCKER / "postgres-init"


def test_compose_file_is_valid_for_the_compose_specification():
    checker = Path(sys.executable).parent / "check-jsonschema"
    if not checker.exists():
        if os.environ.get("CI"):
            pytest.fail("check-jsonschema is missing (a test extra)")
        pytest.skip("check-jsonschema is not installed")

    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_image_with_the_source_env_file_postgres_and_redis():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    backend = services["runtime-backend-dev"]

    assert backend["build"]["dockerfile"] == "infra/docker/Dockerfile.runtime-backend"
    assert (COMPOSE.parent / backend["build"]["context"]).resolve() == ROOT
    assert backend["env_file"] == ["../../.env"]
    mounts = {volume.split(":")[0] for volume in backend["volumes"]}
    assert {"../../lowcode_runtime", "../../plugins"} <= mounts
    assert "/opt/src" in backend["environment"]["PYTHONPATH"]
    assert backend["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert "@postgres:5432/" in backend["environment"]["DATABASE_URL"]
    assert {"postgres", "redis"} <= set(backend["depends_on"])
    assert (
        "./postgres-init:/docker-entrypoint-initdb.d:ro"
        in services["postgres"]["volumes"]
    )
    assert "redis" in services["redis"]["image"]


@pytest.fixture
def preview_role(database_url):
    """Run the init script's SQL as the admin; yields (role URL, role name); drops both."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    suffix = uuid.uuid4().hex[:8]
    db, role = f"lowcode_preview_t{suffix}", f"lowcode_preview_t{suffix}"

    def run_script() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                psql,
                database_url,
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"db={db}",
                "-v",
                f"role={role}",
                "-v",
                "password=not-used-with-trust",
                "-f",
                str(INIT / "preview-role.psql"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    try:
        for _ in range(2):  # idempotent: a second run must pass too
            result = run_script()
            assert result.returncode == 0, result.stderr
        parts = urlsplit(database_url)
        netloc = f"{role}@{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else ""
        )
        yield parts._replace(netloc=netloc, path=f"/{db}").geturl(), role
    finally:
        admin = psycopg2.connect(database_url, connect_timeout=5)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def execute_as(url: str, statement: str) -> str | None:
    """Run ``statement`` as the role; the error message, or None when it passed."""
    connection = psycopg2.connect(url, connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    except psycopg2.Error as e:
        return e.pgerror or str(e)
    finally:
        connection.close()
    return None


def test_preview_role_owns_preview_schemas_and_nothing_else(preview_role):
    url, role = preview_role

    assert execute_as(url, "CREATE SCHEMA IF NOT EXISTS preview_shop") is None
    assert (
        execute_as(url, "CREATE TABLE preview_shop.orders (id bigint PRIMARY KEY)")
        is None
    )
    assert execute_as(url, "CREATE INDEX ON preview_shop.orders (id)") is None
    assert execute_as(url, "SELECT pg_advisory_xact_lock(42)") is None
    assert execute_as(url, "SET client_connection_check_interval = 1000") is None

    assert "preview_*" in execute_as(url, "CREATE SCHEMA billing")
    assert "preview_*" in execute_as(url, "ALTER SCHEMA preview_shop RENAME TO shop")
    assert "permission denied" in execute_as(url, "CREATE TABLE public.t (id int)")
    assert "permission denied" in execute_as(url, "CREATE DATABASE other")
    assert "permission denied" in execute_as(url, "CREATE ROLE other")
