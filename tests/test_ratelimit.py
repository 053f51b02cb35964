"""The rate limiter's counts in one process: per key, per window, starting over each window."""

from __future__ import annotations

import asyncio

from lowcode_runtime.ratelimit import RateLimiter


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
