"""The processes under load: the service, the floor, the Fastify baseline and the upstream.

Each is a real process, started with the CPU pinning of :class:`Pinning`, waited for until
its port answers, and stopped with SIGTERM (then SIGKILL) by its own pid.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FASTIFY = Path(__file__).parent / "fastify"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Pinning:
    """Servers on one core, the load generator on the other; no pinning on a 1-core machine."""

    server: tuple[str, ...]
    load: tuple[str, ...]
    note: str

    @classmethod
    def for_machine(cls) -> Pinning:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2 or shutil.which("taskset") is None:
            return cls((), (), f"no pinning ({len(cores)} core(s) or no taskset)")
        server, load = cores[0], cores[1]
        return cls(
            ("taskset", "-c", str(server)),
            ("taskset", "-c", str(load)),
            f"servers on core {server}, wrk on core {load}",
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One started process and the base URL it answers on."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cpu_seconds(pid: int) -> float | None:
    """A process's CPU time so far, user and system, all its threads; None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command's name in parentheses (which may hold spaces): utime, stime are the
    # 12th and 13th fields (14 and 15 of the whole line, proc(5)).
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    """A process under test did not come up; the message ends with its last output."""


async def _wait_for_port(server: Server, port: int) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if server.process.poll() is not None:
            break
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    tail = server.log.read_text(errors="replace")[-2000:]
    server.stop()
    raise ServerFailed(f"{server.name} did not start on port {port}:\n{tail}")


async def start(
    name: str,
    command: list[str],
    environment: dict[str, str],
    pinning: Pinning,
    log: Path,
    port: int,
) -> Server:
    """Start ``command`` pinned as a server, its stdout and stderr into ``log``."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*pinning.server, *command],
            cwd=ROOT,
            env={**os.environ, **environment},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    await _wait_for_port(server, port)
    return server


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def service_environment(
    token: str, database_url: str, secrets_file: Path, pool_max: int
) -> dict[str, str]:
    """The whole contract on: auth, a limiter that never refuses, logs at info, egress, secrets."""
    return {
        "RUNTIME_BACKEND_AUTH_TOKEN": token,
        "DATABASE_URL": database_url,
        "DATABASE_POOL_MAX": str(pool_max),
        "RUNTIME_BACKEND_RATE_LIMIT_MAX": str(10**9),
        "RUNTIME_BACKEND_EGRESS_ALLOW": "127.0.0.1",
        "SECRETS_FILE": str(secrets_file),
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "REDIS_URL": "",
    }


def fastify_available() -> str | None:
    """None when the Fastify baseline can run, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (FASTIFY / "node_modules" / "fastify").is_dir():
        return "bench/fastify has no node_modules (run: npm ci --prefix bench/fastify)"
    return None


def fastify_command() -> list[str]:
    return ["node", str(FASTIFY / "server.js")]
