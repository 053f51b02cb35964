"""The bench's pieces, without any load or timing: wrk's result line, the report, the proxy."""

from __future__ import annotations

import os
import subprocess
import sys

import aiopg
import pytest

from bench.cases import CASES, DB_CASES, service_statements
from bench.harness import turn_order
from bench.loadgen import Measure, WrkFailed, combined, parse
from bench.report import cpu_table, ratios_table, results_table
from bench.roundtrips import CountingProxy
from bench.servers import cpu_seconds

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:3001
  1 threads and 32 connections
BENCH_RESULT {"requests": 20000, "duration_us": 10000000, "non2xx": 3, "connect": 0, \
"read": 1, "write": 0, "timeout": 0, "p50_us": 1500, "p90_us": 2500, "p99_us": 4500, \
"mean_us": 1600.5, "max_us": 9000}
"""


def measure(
    rps: float, p50: float = 1.0, p99: float = 2.0, cpu_s: float | None = None
) -> Measure:
    return Measure(int(rps * 10), 10.0, p50, p50, p99, 0, 0, cpu_s)


def test_parse_reads_the_result_line_of_done():
    result = parse(WRK_OUTPUT)

    assert result.rps == 2000
    assert (result.p50_ms, result.p90_ms, result.p99_ms) == (1.5, 2.5, 4.5)
    assert (result.non2xx, result.socket_errors) == (3, 1)
    assert not result.clean


def test_rounds_combine_into_every_request_over_the_whole_time():
    rounds = [
        Measure(1000, 1.0, 2.0, 3.0, 9.0, 1, 0),
        Measure(3000, 1.0, 1.0, 2.0, 4.0, 0, 2),
        Measure(2000, 1.0, 5.0, 6.0, 7.0, 0, 0),
    ]

    result = combined(rounds)

    assert result.rps == 2000
    assert (result.p50_ms, result.p90_ms, result.p99_ms) == (2.0, 3.0, 7.0)  # medians
    assert (result.non2xx, result.socket_errors) == (1, 2)


def test_rounds_combine_their_cpu_only_when_every_round_knows_it():
    known = [measure(100, cpu_s=0.25), measure(300, cpu_s=0.75)]

    assert combined(known).cpu_us_per_request == 250.0  # 1 s over 4,000 requests
    assert combined([*known, measure(100)]).cpu_us_per_request is None


def test_cpu_ratios_are_requests_per_cpu_second_of_the_service_over_each_baseline():
    results = {
        ("get", "service"): measure(900, cpu_s=1.8),  # 200 µs a request
        ("get", "floor"): measure(1000, cpu_s=1.8),  # 180
        ("get", "fastify"): measure(2000, cpu_s=1.0),  # 50
        ("rest", "service"): measure(500),  # CPU unknown
        ("rest", "direct"): measure(1000, cpu_s=0.3),
    }

    rows = {line.split("|")[1].strip(): line for line in cpu_table(results)[2:]}

    cells = [cell.strip() for cell in rows["get"].split("|")[2:-1]]
    assert cells == ["200.0", "180.0", "50.0", "-", "0.90", "0.25", "-"]
    rest = [cell.strip() for cell in rows["rest"].split("|")[2:-1]]
    assert rest == ["-", "-", "-", "30.0", "-", "-", "-"]


def test_a_process_cpu_time_is_read_and_grows_with_work():
    before = cpu_seconds(os.getpid())
    if before is None:
        pytest.skip("no /proc on this system")
    sum(i * i for i in range(2_000_000))

    after = cpu_seconds(os.getpid())

    assert after is not None and after > before
    assert cpu_seconds(2**22 + 1) is None  # past any pid Linux hands out


def test_no_server_always_runs_right_after_the_same_one():
    servers = ["service", "floor", "fastify"]
    rounds = [turn_order(servers, number) for number in (1, 2, 3)]
    run = [server for order in rounds for server in order]

    assert all(sorted(order) == sorted(servers) for order in rounds)
    assert rounds[0] == servers  # the first round as listed
    before_service = {run[i - 1] for i in range(1, len(run)) if run[i] == "service"}
    assert len(before_service) > 1, run


def test_parse_without_a_result_line_says_what_wrk_printed():
    with pytest.raises(WrkFailed, match="unable to connect"):
        parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_every_case_has_its_script():
    for case in CASES:
        for target in ("service", *case.baselines):
            assert case.script_for(target).is_file(), (case.name, target)


def test_ratios_divide_the_service_by_each_baseline():
    results = {
        ("get", "service"): measure(900, p50=2.0, p99=5.0),
        ("get", "floor"): measure(1000, p99=10.0),
        ("get", "fastify"): measure(1800),
        ("rest", "service"): measure(500),
        ("rest", "direct"): measure(1000),
    }

    rows = {line.split("|")[1].strip(): line for line in ratios_table(results)[2:]}

    cells = [cell.strip() for cell in rows["get"].split("|")[2:-1]]
    assert cells == ["0.90", "0.50", "-", "2.50", "0.50"]
    assert rows["rest"].split("|")[4].strip() == "0.50"
    assert rows["list"].split("|")[2].strip() == "-"


def test_a_skipped_baseline_is_named_in_the_results():
    lines = results_table(
        {("get", "service"): measure(10)}, {"fastify": "skipped: no node"}
    )

    assert any(
        "| get | fastify |" in line and "skipped: no node" in line for line in lines
    )


def test_baselines_get_the_statements_of_the_service(database_url):
    statements = service_statements("preview_x", database_url)

    assert set(statements) == set(DB_CASES)
    assert statements["get"].startswith(
        'SELECT "id", "title", "category", "price" FROM'
    )
    assert '"preview_x"."items"' in statements["list"]
    assert statements["create"].count("%s") == 3


async def test_the_proxy_counts_each_statement_as_one_round_trip(database_url):
    proxy = CountingProxy(database_url)
    await proxy.start()
    try:
        async with (
            aiopg.connect(proxy.dsn) as connection,
            connection.cursor() as cursor,
        ):
            before = proxy.count
            for value in range(3):
                await cursor.execute("SELECT %s", (value,))
                assert await cursor.fetchone() == (value,)
            assert proxy.count - before == 3
    finally:
        await proxy.stop()


def test_the_driver_comparison_runs_and_reports_both_ways(database_url):
    result = subprocess.run(
        [sys.executable, "-m", "bench.driver", "--statements", "200", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 4, result.stdout  # header, rule, and the two ways
    assert "Warning" not in result.stderr, result.stderr
