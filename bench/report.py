"""What the bench prints: the machine, one row per measured run, the ratios, round trips.

Everything is Markdown, so a run's output can go into ``bench/RESULTS.md`` as it is.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path

from bench.cases import CASES
from bench.loadgen import Measure

SERVERS = ("service", "floor", "fastify", "direct")


def _first_line(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return (result.stdout or result.stderr).strip().splitlines()[0]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine(postgres_version: str, pinning_note: str) -> list[str]:
    """Lines naming what the numbers were measured on."""
    return [
        f"- cores: {os.cpu_count()} ({cpu_model()}); {pinning_note}",
        f"- Python {platform.python_version()}, Node {_first_line(['node', '--version'])}, "
        f"PostgreSQL {postgres_version}, {_first_line(['wrk', '-v']).split(' Copyright')[0]}",
        f"- system: {platform.platform()}",
    ]


def _cell(measure: Measure | None, skipped: str) -> list[str]:
    if measure is None:
        return ["-", "-", "-", skipped]
    flag = "" if measure.clean else " (errors)"
    problems = f"{measure.non2xx} non-2xx, {measure.socket_errors} socket errors{flag}"
    return [
        f"{measure.rps:,.0f}",
        f"{measure.p50_ms:.2f}",
        f"{measure.p99_ms:.2f}",
        problems,
    ]


def results_table(
    results: Mapping[tuple[str, str], Measure | None], skipped: Mapping[str, str]
) -> list[str]:
    lines = [
        "| case | server | req/s | p50 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for case in CASES:
        for server in ("service", *case.baselines):
            measure = results.get((case.name, server))
            cells = _cell(measure, skipped.get(server, "not run"))
            lines.append(f"| {case.name} | {server} | " + " | ".join(cells) + " |")
    return lines


def _ratio(top: Measure | None, bottom: Measure | None) -> str:
    if top is None or bottom is None or bottom.rps == 0:
        return "-"
    return f"{top.rps / bottom.rps:.2f}"


def _p99_over(top: Measure | None, bottom: Measure | None) -> str:
    if top is None or bottom is None or bottom.p99_ms == 0:
        return "-"
    return f"{top.p99_ms / bottom.p99_ms:.2f}"


def ratios_table(results: Mapping[tuple[str, str], Measure | None]) -> list[str]:
    """Throughput ratios against each baseline, and the service's tail against its median."""
    lines = [
        "| case | service / floor | service / fastify | rest / direct "
        "| service p99 / p50 | service p99 / floor p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in CASES:
        service = results.get((case.name, "service"))
        floor = results.get((case.name, "floor"))
        tail = "-" if service is None else f"{service.p99_ms / service.p50_ms:.2f}"
        cells = [
            _ratio(service, floor),
            _ratio(service, results.get((case.name, "fastify"))),
            _ratio(service, results.get((case.name, "direct"))),
            tail,
            _p99_over(service, floor),
        ]
        lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
    return lines


def _micros(measure: Measure | None) -> str:
    micros = None if measure is None else measure.cpu_us_per_request
    return "-" if micros is None else f"{micros:,.1f}"


def _cpu_ratio(service: Measure | None, baseline: Measure | None) -> str:
    """Requests per CPU second, the service's over the baseline's (above 1: it uses less)."""
    ours = None if service is None else service.cpu_us_per_request
    theirs = None if baseline is None else baseline.cpu_us_per_request
    if not ours or theirs is None:
        return "-"
    return f"{theirs / ours:.2f}"


def cpu_table(results: Mapping[tuple[str, str], Measure | None]) -> list[str]:
    """Each server's CPU per request (its own process only) and the same ratios by CPU."""
    lines = [
        "| case | service µs | floor µs | fastify µs | direct µs "
        "| service / floor | service / fastify | rest / direct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in CASES:
        measures = [results.get((case.name, server)) for server in SERVERS]
        service = measures[0]
        cells = [_micros(m) for m in measures]
        cells += [_cpu_ratio(service, baseline) for baseline in measures[1:]]
        lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
    return lines


def round_trips_table(counts: Mapping[str, float]) -> list[str]:
    lines = ["| db operation | round trips per warm call |", "| --- | ---: |"]
    lines += [f"| {name} | {count:g} |" for name, count in counts.items()]
    return lines
