"""Caches that several processes share through Redis when ``REDIS_URL`` is set.

Without Redis each process keeps its own in memory; that is right for one process and makes
limits per process when there are several (start-up warns about it).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from aiocache import Cache
from aiocache.serializers import JsonSerializer
from redis.asyncio.connection import parse_url

REDIS_TIMEOUT_S = 1.0
"""How long one Redis command may take: a healthy Redis answers in a millisecond or two, and
the rate limit waits for it on every request."""

REDIS_COOL_DOWN_S = 10.0
"""After a Redis command failed, how long the process does without Redis before asking again."""


class Breaker:
    """Whether to ask a shared store now: not for a while after it failed.

    A Redis that drops packets costs each command its whole timeout; without the pause every
    request would wait that long while it lasts.
    """

    def __init__(self, cool_down_s: float = REDIS_COOL_DOWN_S) -> None:
        self.cool_down_s = cool_down_s
        self._closed_at = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self._closed_at

    def failed(self) -> None:
        self._closed_at = time.monotonic() + self.cool_down_s

    def succeeded(self) -> None:
        self._closed_at = 0.0


def make_cache(redis_url: str | None, namespace: str) -> Cache:
    """An aiocache cache under ``namespace``: Redis when a URL is given, else memory."""
    if not redis_url:
        # No time limit in memory: aiocache's would wrap each call in a task of its own.
        return Cache(Cache.MEMORY, namespace=namespace, timeout=None)

    options = redis_options(redis_url)
    return Cache(
        Cache.REDIS,
        endpoint=options.pop("host", "127.0.0.1"),
        port=options.pop("port", 6379),
        db=options.pop("db", 0),
        password=options.pop("password", None),
        # The rest as redis-py read it: the user name, TLS for rediss://, query options.
        connection_pool_kwargs=options,
        namespace=namespace,
        serializer=JsonSerializer(),
        timeout=REDIS_TIMEOUT_S,
    )


def redis_options(redis_url: str) -> dict[str, Any]:
    """redis-py's own reading of ``redis_url``; ValueError for one it cannot use.

    redis-py drops a database that is not a number without a word: refused here instead.
    """
    database = urlsplit(redis_url).path.lstrip("/")
    if database and not database.isdigit():
        raise ValueError("the database, after the last /, must be a number")
    try:
        return dict(parse_url(redis_url))
    except ValueError:
        # Its text may quote a password that a '#', '?' or '/' cut short into the port.
        raise ValueError(
            "the port must be a number; a '#', '?' or '/' in the password must be "
            "percent-encoded"
        ) from None
