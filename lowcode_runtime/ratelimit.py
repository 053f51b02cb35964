"""Fixed-window rate limit (API.md section 2), counted in a cache that Redis can share."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aiocache import BaseCache

from lowcode_runtime import events
from lowcode_runtime.logs import logger
from lowcode_runtime.shared_state import Breaker

FAILURE_LINE_EVERY_S = 60.0
"""While the counter store fails, how often the error line repeats."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_seconds),
        }


class RateLimiter:
    """Counts hits per key in the current window; one increment per request.

    With a cache (Redis, shared by every process) the counters live there. Without one, and
    while that Redis fails, they are this process's own, in a dict that starts over with each
    window: aiocache's memory backend would do the same through five decorator layers and a
    timer per key, a tenth of a warm call's own work.
    """

    def __init__(
        self,
        cache: BaseCache | None,
        limit: int,
        window_ms: int,
        breaker: Breaker | None = None,
    ) -> None:
        self.cache = cache
        self.limit = limit
        self.window_ms = window_ms
        self.breaker = breaker or Breaker()
        self._window = -1
        self._counts: dict[str, int] = {}
        self._counted_here = 0  # requests counted here since the last line that said so
        self._next_failure_line = 0.0

    async def hit(self, key: str) -> Verdict:
        now_ms = time.time() * 1000
        window = int(now_ms // self.window_ms)
        reset = max(1, math.ceil(((window + 1) * self.window_ms - now_ms) / 1000))

        if self.cache is not None and self.breaker.allows():
            try:
                count = await self._count_shared(f"{key}:{window}")
            except Exception as e:
                # A broken counter store must not take every preview down, nor lift the limit.
                self.breaker.failed()
                self._store_failed(e)
                count = self._count_here(key, window)
        else:
            if self.cache is not None:
                self._counted_here += 1
            count = self._count_here(key, window)

        return Verdict(
            count <= self.limit, self.limit, max(0, self.limit - count), reset
        )

    async def _count_shared(self, counter: str) -> int:
        assert self.cache is not None
        count: int = await self.cache.increment(counter, 1)
        if count == 1:
            await self.cache.expire(counter, math.ceil(self.window_ms / 1000) + 1)
        self.breaker.succeeded()
        return count

    def _count_here(self, key: str, window: int) -> int:
        if window != self._window:
            self._window, self._counts = window, {}
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count

    def _store_failed(self, error: Exception) -> None:
        """One error line a minute at most, counting the requests counted here since the last:
        a line (with its traceback) per request would flood the logs while Redis is down."""
        self._counted_here += 1
        now = time.monotonic()
        if now < self._next_failure_line:
            return
        self._next_failure_line = now + FAILURE_LINE_EVERY_S
        first = self._counted_here == 1
        logger.bind(
            event=events.RATE_LIMIT_STORE_FAILED,
            requestsCountedHere=self._counted_here,
            coolDownS=self.breaker.cool_down_s,
        ).opt(exception=error if first else None).error(
            f"rate-limit store failed ({type(error).__name__}); counting in this process, "
            f"asking the store again after {self.breaker.cool_down_s:g} s; "
            f"{self._counted_here} request(s) counted here since the last such line"
        )
        self._counted_here = 0

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()
