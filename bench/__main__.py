"""The benchmark: the service under a real load generator, against baselines of the same run.

    ./scripts/bench [--duration S] [--connections N] [--no-fastify] ...

(or ``.venv/bin/python -m bench`` once wrk and ``bench/fastify/node_modules`` are there).

What runs, each as its own process:

- the service (``python -m lowcode_runtime serve``, one process) with the whole contract on:
  a token, a rate limit so high it never refuses, JSON logs at info into a file, the egress
  policy allowing loopback, a secret from ``SECRETS_FILE``;
- the floor (``bench/floor.py``): bare aiohttp + aiopg running the service's SQL, answering
  with the standard ``json``, no auth and no validation;
- Fastify + pg (``bench/fastify/server.js``) doing the same, skipped with a note where Node
  or its packages are missing;
- a local JSON upstream (``bench/upstream.py``) for the ``rest`` case, also hit directly.

The PostgreSQL is ``DATABASE_URL``, else 127.0.0.1:5432, else an embedded one. The service's
first call builds the table through its migration; 100,000 rows then go in with one
``INSERT ... SELECT generate_series``. The baselines use a pool of the service's size.

Each case (``get`` by random id, ``list`` on the indexed category sorted newest first with
limit 50, ``create``, and ``rest``) is one Lua script in ``bench/lua`` that the service and
its baselines answer alike; wrk runs it against each server for a warm-up, then the servers
take turns for ``--rounds`` rounds of ``--duration`` seconds, in an order that reverses every
round (a slow moment of the machine, or what one server leaves behind, meets every server, not
one); req/s is over all rounds, latencies the median round's. Servers are pinned to one core
and wrk to the other (no pinning on a 1-core machine); PostgreSQL is not pinned. Before the
load, one sample of each call must give the same data from every server, and a second service
process behind a counting proxy gives the database round trips of each warm db call. The exit
code is 1 when any answer under load was not a 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys

import psycopg2

from bench.cases import ROWS
from bench.checks import AnswersDiffer
from bench.harness import Options, run_bench
from bench.loadgen import Load, WrkFailed
from bench.servers import ServerFailed


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Load()
    parser.add_argument(
        "--duration", type=int, default=defaults.duration_s, help="seconds per round"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="rounds per server, the servers of a case taking turns",
    )
    parser.add_argument("--warmup", type=int, default=defaults.warmup_s, help="seconds")
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--rows", type=int, default=ROWS, help="rows of the table")
    parser.add_argument(
        "--no-fastify", action="store_true", help="skip the Fastify run"
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed (apt-get install wrk); ./scripts/bench installs it"
        )
    load = Load(args.connections, args.threads, args.duration, args.warmup, args.rounds)
    options = Options(load, args.rows, fastify=not args.no_fastify)
    try:
        code = asyncio.run(run_bench(options))
    except (AnswersDiffer, ServerFailed, WrkFailed) as e:
        sys.exit(f"bench stopped: {e}")
    except psycopg2.OperationalError as e:
        sys.exit(f"bench stopped: the PostgreSQL does not answer: {str(e).strip()}")
    sys.exit(code)


if __name__ == "__main__":
    main()
