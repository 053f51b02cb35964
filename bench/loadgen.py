"""Running wrk with a case script, and reading the JSON line its ``done()`` prints."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

from bench.cases import LUA

MARKER = "BENCH_RESULT "


@dataclass(frozen=True)
class Load:
    """How hard and how long wrk pushes each case."""

    connections: int = 32
    threads: int = 1
    duration_s: int = 10
    warmup_s: int = 3


@dataclass(frozen=True)
class Measure:
    """One wrk run: throughput and latency percentiles, and what went wrong."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def clean(self) -> bool:
        """Every answer was a 2xx and no socket failed."""
        return self.requests > 0 and self.non2xx == 0 and self.socket_errors == 0


class WrkFailed(RuntimeError):
    """wrk exited without printing its result line."""


def parse(output: str) -> Measure:
    """The :class:`Measure` of wrk's output; WrkFailed when the result line is missing."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            result = json.loads(line[len(MARKER) :])
            break
    else:
        raise WrkFailed(f"no result line in wrk's output:\n{output[-2000:]}")

    socket_errors = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return Measure(
        requests=result["requests"],
        duration_s=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p90_ms=result["p90_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        non2xx=result["non2xx"],
        socket_errors=socket_errors,
    )


async def wrk(
    url: str,
    script: Path,
    environment: dict[str, str],
    load: Load,
    duration_s: int,
    pin: tuple[str, ...],
) -> Measure:
    """One wrk run of ``script`` against ``url`` for ``duration_s`` seconds."""
    command = [
        *pin,
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    lua_path = f"{LUA}/?.lua;;"
    process = await asyncio.create_subprocess_exec(
        *command,
        env={**os.environ, **environment, "LUA_PATH": lua_path},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return parse(output.decode(errors="replace"))


async def measure(
    url: str,
    script: Path,
    environment: dict[str, str],
    load: Load,
    pin: tuple[str, ...],
) -> Measure:
    """A warm-up run (discarded), then the measured one."""
    if load.warmup_s > 0:
        await wrk(url, script, environment, load, load.warmup_s, pin)
    return await wrk(url, script, environment, load, load.duration_s, pin)
