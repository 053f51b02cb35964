"""Caches that several processes share through Redis when ``REDIS_URL`` is set.

Without Redis each process keeps its own in memory; that is right for one process and makes
limits per process when there are several (start-up warns about it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiocache import Cache
from aiocache.serializers import JsonSerializer


def make_cache(redis_url: str | None, namespace: str) -> Cache:
    """An aiocache cache under ``namespace``: Redis when a URL is given, else memory."""
    if not redis_url:
        # No time limit in memory: aiocache's would wrap each call in a task of its own.
        return Cache(Cache.MEMORY, namespace=namespace, timeout=None)

    parts = urlsplit(redis_url)
    db = int(parts.path.lstrip("/") or 0)
    return Cache(
        Cache.REDIS,
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=db,
        password=parts.password,
        namespace=namespace,
        serializer=JsonSerializer(),
    )
