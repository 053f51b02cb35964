"""One bench run: start everything, check it answers alike, count round trips, load it, report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import checks, database, report, servers
from bench.cases import (
    CASES,
    CATEGORIES,
    DB_CASES,
    SECRET_NAME,
    TABLE,
    Case,
    rest_definition,
    service_statements,
)
from bench.loadgen import Load, Measure, combined, wrk
from bench.roundtrips import CountingProxy
from bench.servers import Pinning, Server, free_port, python_module
from lowcode_db.tenancy import schema_name
from lowcode_runtime.config import Settings
from tests.fixtures.database import available_database

ROUND_TRIP_CALLS = 20


@dataclass(frozen=True)
class Options:
    load: Load
    rows: int
    fastify: bool = True


@dataclass
class Run:
    """What one run shares: the project, its secrets, and where its files go."""

    dsn: str
    folder: Path
    pinning: Pinning
    project: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    pool_max: int = field(default_factory=lambda: Settings().database_pool_max)

    @property
    def schema(self) -> str:
        return schema_name(self.project)

    @property
    def path(self) -> str:
        return f"/v1/projects/{self.project}/datasources/execute"

    def secrets_file(self) -> Path:
        path = self.folder / "secrets.json"
        path.write_text(json.dumps({self.project: {SECRET_NAME: self.secret}}))
        return path

    async def start_service(self, name: str, database_url: str) -> Server:
        port = free_port()
        command = python_module(
            "lowcode_runtime", "serve", "--host", "127.0.0.1", "--port", str(port)
        )
        environment = servers.service_environment(
            self.token, database_url, self.secrets_file(), self.pool_max
        )
        log = self.folder / f"{name}.log"
        return await servers.start(name, command, environment, self.pinning, log, port)


@contextlib.asynccontextmanager
async def started(run: Run, fastify: bool) -> AsyncIterator[dict[str, Server]]:
    """The upstream, the service (its table created and filled), the floor and Fastify."""
    running: dict[str, Server] = {}
    try:
        port = free_port()
        running["upstream"] = await servers.start(
            "upstream",
            python_module("bench.upstream", "--port", str(port)),
            {},
            run.pinning,
            run.folder / "upstream.log",
            port,
        )
        running["service"] = await run.start_service("service", run.dsn)

        baseline_environment = {
            "BENCH_DSN": run.dsn,
            "BENCH_POOL_MAX": str(run.pool_max),
            "BENCH_STATEMENTS": json.dumps(service_statements(run.schema, run.dsn)),
        }
        port = free_port()
        running["floor"] = await servers.start(
            "floor",
            python_module("bench.floor", "--port", str(port)),
            baseline_environment,
            run.pinning,
            run.folder / "floor.log",
            port,
        )
        if fastify:
            port = free_port()
            running["fastify"] = await servers.start(
                "fastify",
                servers.fastify_command(),
                {
                    **baseline_environment,
                    **database.libpq_environment(run.dsn),
                    "BENCH_PORT": str(port),
                },
                run.pinning,
                run.folder / "fastify.log",
                port,
            )
        yield running
    finally:
        for server in running.values():
            server.stop()


async def create_table(
    http: aiohttp.ClientSession, run: Run, service: Server, rows: int
) -> None:
    """The service's first call migrates (builds the table); the rows go in straight by SQL."""
    body = checks.db_body("list", {"limit": 1})
    await checks.execute(http, service.url, run.path, run.token, body)
    database.fill(run.dsn, run.schema, TABLE["table"], rows)


async def count_round_trips(http: aiohttp.ClientSession, run: Run) -> dict[str, float]:
    """Statements per warm db call of a service process whose database is behind the proxy."""
    proxy = CountingProxy(run.dsn)
    await proxy.start()
    service = await run.start_service("service-counted", proxy.dsn)
    counts = {}
    try:
        for operation in DB_CASES:
            body = checks.db_body(operation)
            for _ in range(3):
                await checks.execute(http, service.url, run.path, run.token, body)
            before = proxy.count
            for _ in range(ROUND_TRIP_CALLS):
                await checks.execute(http, service.url, run.path, run.token, body)
            counts[operation] = (proxy.count - before) / ROUND_TRIP_CALLS
    finally:
        service.stop()
        await proxy.stop()
    return counts


def wrk_environment(run: Run, rows: int, upstream_url: str) -> dict[str, str]:
    return {
        "BENCH_PATH": run.path,
        "BENCH_TOKEN": run.token,
        "BENCH_DATASOURCE": json.dumps(TABLE),
        "BENCH_REST_DATASOURCE": json.dumps(rest_definition(upstream_url)),
        "BENCH_ROWS": str(rows),
        "BENCH_CATEGORIES": str(CATEGORIES),
        "BENCH_UPSTREAM_SECRET": run.secret,
    }


async def load_all(
    run: Run, running: dict[str, Server], load: Load, environment: dict[str, str]
) -> dict[tuple[str, str], Measure | None]:
    """Each case against the service and its baselines, taking turns round by round.

    One run per server after another would let a slow moment of the machine (a checkpoint,
    other work) land on one server only; in turns, each round of each server meets the same
    moments as its neighbours'. The order reverses every round (:func:`turn_order`).
    """
    results: dict[tuple[str, str], Measure | None] = {}
    for case in CASES:
        urls, answering = {}, {}
        for target in ("service", *case.baselines):
            if target == "direct":
                urls[target] = running["upstream"].url + "/items"
                answering[target] = running["upstream"]
            elif target in running:
                urls[target] = running[target].url
                answering[target] = running[target]
            else:
                results[(case.name, target)] = None

        rounds: dict[str, list[Measure]] = {target: [] for target in urls}
        print(f"  {case.name}: warming up {', '.join(urls)} ...", flush=True)
        for target, url in urls.items():
            if load.warmup_s > 0:
                await _run(case, target, url, environment, load, load.warmup_s, run)
        for number in range(1, load.rounds + 1):
            print(f"  {case.name}: round {number} of {load.rounds} ...", flush=True)
            for target in turn_order(list(urls), number):
                url, pid = urls[target], answering[target].process.pid
                before = servers.cpu_seconds(pid)
                measured = await _run(
                    case, target, url, environment, load, load.duration_s, run
                )
                after = servers.cpu_seconds(pid)
                if before is not None and after is not None:
                    measured = dataclasses.replace(
                        measured, server_cpu_s=after - before
                    )
                rounds[target].append(measured)
        for target, measures in rounds.items():
            results[(case.name, target)] = combined(measures)
    return results


def turn_order(targets: list[str], number: int) -> list[str]:
    """The servers' order in round ``number`` (from 1): as listed, then reversed, and so on.

    In one fixed order each server would always run right after the same one, and pay for
    what that one leaves behind (PostgreSQL still busy after Fastify's load, say).
    """
    return targets if number % 2 else targets[::-1]


async def _run(
    case: Case,
    target: str,
    url: str,
    environment: dict[str, str],
    load: Load,
    seconds: int,
    run: Run,
) -> Measure:
    script = case.script_for(target)
    return await wrk(url, script, environment, load, seconds, run.pinning.load)


def call_log_lines(log: Path) -> int:
    with log.open(errors="replace") as lines:
        return sum(1 for line in lines if '"dataSource.call.success"' in line)


async def run_bench(options: Options) -> int:
    """The whole run; prints the report and returns the exit code (1 when any call failed)."""
    pinning = Pinning.for_machine()
    skipped: dict[str, str] = {}
    why_not = servers.fastify_available() if options.fastify else "--no-fastify"
    if why_not:
        skipped["fastify"] = f"skipped: {why_not}"

    with (
        available_database("lowcode-bench-") as dsn,
        tempfile.TemporaryDirectory(prefix="lowcode-bench-") as folder,
    ):
        postgres = database.server_version(dsn)
        run = Run(dsn, Path(folder), pinning)
        print(f"bench: project {run.project}, {pinning.note}", flush=True)
        try:
            async with (
                aiohttp.ClientSession() as http,
                started(run, not why_not) as running,
            ):
                service = running["service"]
                print(f"bench: creating and filling {options.rows} rows", flush=True)
                await create_table(http, run, service, options.rows)

                baselines = {
                    k: v.url for k, v in running.items() if k in ("floor", "fastify")
                }
                await checks.compare_db(
                    http, run.path, run.token, service.url, baselines
                )
                upstream_url = running["upstream"].url + "/items"
                rest = rest_definition(upstream_url)
                await checks.compare_rest(http, run.path, run.token, service.url, rest)

                print("bench: counting round trips", flush=True)
                round_trips = await count_round_trips(http, run)
                print("bench: loading", flush=True)
                environment = wrk_environment(run, options.rows, upstream_url)
                results = await load_all(run, running, options.load, environment)
            log_lines = call_log_lines(run.folder / "service.log")
        finally:
            database.drop_schema(dsn, run.schema)

    load = options.load
    lines = [
        "",
        "## Machine",
        *report.machine(postgres, pinning.note),
        f"- load: wrk -t{load.threads} -c{load.connections}, {load.warmup_s} s warm-up "
        f"then {load.rounds} rounds of {load.duration_s} s per server, the servers of a "
        f"case taking turns; {options.rows} rows; pool {run.pool_max}",
        "",
        "## Results",
        *report.results_table(results, skipped),
        "",
        "## Ratios",
        *report.ratios_table(results),
        "",
        "## CPU per request",
        *report.cpu_table(results),
        "",
        "## Round trips",
        *report.round_trips_table(round_trips),
        "",
        f"The service logged {log_lines} `dataSource.call.success` lines at info.",
    ]
    print("\n".join(lines))
    clean = all(m.clean for m in results.values() if m is not None)
    if not clean:
        print(
            "\nSome runs had non-2xx answers or socket errors (see the errors column)."
        )
    return 0 if clean else 1
