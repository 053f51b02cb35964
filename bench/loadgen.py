"""Running wrk with a case script, and reading the JSON line its ``done()`` prints."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.cases import LUA

MARKER = "BENCH_RESULT "


@dataclass(frozen=True)
class Load:
    """How hard and how long wrk pushes each case: ``rounds`` runs of ``duration_s`` per server,
    the servers of a case taking turns, after one warm-up run each."""

    connections: int = 32
    threads: int = 1
    duration_s: int = 5
    warmup_s: int = 3
    rounds: int = 3


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
    # The server process's CPU time (user + system) over the run; None where it is unknown.
    server_cpu_s: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def cpu_us_per_request(self) -> float | None:
        """The server's CPU per answered request: steadier than req/s on a shared machine,
        where a neighbour's load slows every request but costs the server no CPU."""
        if self.server_cpu_s is None or self.requests == 0:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def clean(self) -> bool:
        """Every answer was a 2xx and no socket failed."""
        return self.requests > 0 and self.non2xx == 0 and self.socket_errors == 0


def combined(rounds: list[Measure]) -> Measure:
    """The rounds of one server as one measure: every request over the whole time, the
    median round's latencies, every error, all the CPU (when every round knows it)."""
    cpu = [m.server_cpu_s for m in rounds]
    return Measure(
        requests=sum(m.requests for m in rounds),
        duration_s=sum(m.duration_s for m in rounds),
        p50_ms=statistics.median(m.p50_ms for m in rounds),
        p90_ms=statistics.median(m.p90_ms for m in rounds),
        p99_ms=statistics.median(m.p99_ms for m in rounds),
        non2xx=sum(m.non2xx for m in rounds),
        socket_errors=sum(m.socket_errors for m in rounds),
        server_cpu_s=None if None in cpu else sum(c for c in cpu if c is not None),
    )


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
