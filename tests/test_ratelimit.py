"""The rate limiter's counts in one process: per key, per window, starting over each window."""

from __future__ import annotations

import asyncio
import io
import json

from lowcode_runtime.logs import flush_logs, setup_logging
from lowcode_runtime.ratelimit import RateLimiter
from lowcode_runtime.shared_state import Breaker, make_cache
from tests.support import SilentRedis


async def test_each_key_has_its_own_count_within_a_window():
    limiter = RateLimiter(None, 2, 60_000)
    verdicts = [await limiter.hit("project:a") for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert [v.remaining for v in verdicts] == [1, 0, 0]
    assert (await limiter.hit("project:b")).allowed


async def test_a_new_window_starts_every_count_over():
    limiter = RateLimiter(None, 1, 100)
    await limiter.hit("client:1")
    refused = await limiter.hit("client:1")
    assert not refused.allowed and 1 <= refused.reset_seconds <= 1

    await asyncio.sleep(0.12)  # past the 100 ms window, whatever its phase
    assert (await limiter.hit("client:1")).allowed
    assert len(limiter._counts) == 1  # the last window's keys are gone


async def test_a_failing_store_counts_in_the_process_and_says_so_once_a_minute(
    unused_tcp_port,
):
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    # A Redis URL where nothing listens: the real client, failing as it does in production.
    cache = make_cache(f"redis://127.0.0.1:{unused_tcp_port}/0", "test:")
    limiter = RateLimiter(cache, 2, 60_000)
    try:
        verdicts = [await limiter.hit("project:a") for _ in range(4)]
    finally:
        await limiter.close()
        flush_logs()
        setup_logging("warning", "json")

    # The limit still holds, per process, while the store is away.
    assert [verdict.allowed for verdict in verdicts] == [True, True, False, False]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [failed] = [line for line in lines if line["event"] == "ratelimit.store_failed"]
    assert failed["requestsCountedHere"] == 1 and "exception" in failed
    assert "counting in this process" in failed["message"]


async def test_a_silent_store_is_asked_once_then_not_again_until_its_cool_down_ends():
    """Each command to a black hole costs its whole timeout: without the pause every request
    would wait that long."""
    silent = SilentRedis()
    port = await silent.start()
    breaker = Breaker(cool_down_s=0.3)
    limiter = RateLimiter(
        make_cache(f"redis://127.0.0.1:{port}/0", "t:"), 2, 60_000, breaker
    )
    try:
        assert (await limiter.hit("project:a")).allowed  # waits out the timeout
        asked = silent.received
        assert asked > 0 and not breaker.allows()

        later = [await limiter.hit("project:a") for _ in range(3)]
        assert [verdict.allowed for verdict in later] == [True, False, False]
        assert silent.received == asked  # not asked during the cool-down

        await asyncio.sleep(0.35)
        assert breaker.allows()
        assert not (await limiter.hit("project:a")).allowed  # asked again, failed again
        assert silent.received > asked
    finally:
        await limiter.close()
        await silent.close()
