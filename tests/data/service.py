"""A real ``python -m lowcode_runtime serve`` subprocess for the process-level tests.

Every wait is bounded; ``stop`` and ``kill`` end the whole process group, so a test that fails
half-way leaves neither a worker nor a server behind (the fixture calls ``kill`` always).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lowcode_runtime.config import variables
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]
SLOW_PLUGIN_SOURCE = Path(__file__).resolve().parent / "slow_plugin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environ(**values: str) -> dict[str, str]:
    """This process's environment without any of the service's variables, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if k not in variables()}
    env.pop("LOWCODE_DATA_DIR", None)
    env.update(values)
    return env


class Service:
    """One service process, its output in a file, its address on loopback."""

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str],
        args: Sequence[str] = (),
        python: str = sys.executable,
        command: Sequence[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = workdir / f"service-{self.port}.log"
        argv = list(command or [python, "-m", "lowcode_runtime"])
        self.argv = [
            *argv,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *args,
        ]
        self.env = dict(env)
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise AssertionError(f"service exited early:\n{self.text()}")
                try:
                    async with session.get(
                        f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"service not healthy after {timeout} s:\n{self.text()}")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"service still running {timeout} s later:\n{self.text()}"
                )
            await asyncio.sleep(0.05)
        return self.process.returncode

    def kill(self) -> None:
        """End the process group at once (a finaliser: no-op when it has exited)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == name]

    async def wait_for_events(
        self, name: str, count: int, timeout: float = 20.0
    ) -> None:
        """Until ``count`` lines of event ``name`` were logged (each worker logs its own)."""
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} {name} lines:\n{self.text()}")
            await asyncio.sleep(0.1)


def install_slow_plugin(target: Path) -> Path:
    """Install the test plugin distribution into ``target``; put it on PYTHONPATH to load it.

    A real install (dist-info with its entry point) into a folder of its own, so the project's
    environment, which other tests share, never sees the ``sleep`` type.
    """
    # Built from a copy: setuptools writes build/ and egg-info/ beside the sources.
    source = shutil.copytree(SLOW_PLUGIN_SOURCE, target.parent / "slow_plugin_source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return target


def db_plugin_installed() -> bool:
    """Whether the ``db`` entry point loads (tests of the db plugin's process behaviour)."""
    from lowcode_runtime.plugins import build_plugin_manager, build_type_registry

    return "db" in build_type_registry(build_plugin_manager())


@pytest.fixture(scope="session")
def slow_plugin_path(tmp_path_factory):
    """A folder holding the installed test plugin ``lowcode-test-slow`` (type ``sleep``)."""
    return install_slow_plugin(tmp_path_factory.mktemp("slow-plugin") / "site")


@pytest.fixture
def start_service(tmp_path, database_url):
    """Start services (``args``, extra env); every one is killed when the test ends."""
    started: list[Service] = []

    async def start(*args: str, **env: str) -> Service:
        values = {
            "RUNTIME_BACKEND_AUTH_TOKEN": TOKEN,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "debug",
            **env,
        }
        service = Service(tmp_path, clean_environ(**values), args).start()
        started.append(service)
        await service.wait_healthy()
        workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        await service.wait_for_events("service.started", workers)
        return service

    yield start
    for service in started:
        service.kill()
