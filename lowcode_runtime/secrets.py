"""Project secrets (API.md section 8): the provider interface and the cache in front of it.

A provider only fetches. ``SecretsCache`` adds the TTL cache, one request for concurrent misses
of a project, the stale fallback and the registration of every value with the log masking.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Protocol

from lowcode_runtime import errors, events
from lowcode_runtime.config import Settings
from lowcode_runtime.logs import logger
from lowcode_runtime.masking import MIN_SECRET_LENGTH, register_secret
from lowcode_runtime.masking import secrets as registered_secrets
from lowcode_runtime.metrics import SECRETS_CACHE, child
from lowcode_runtime.secrets_providers import SecretsFetchFailed
from lowcode_runtime.shared_state import Breaker, make_cache

# How long past its TTL a set may still be served while the provider fails.
STALE_FOR_SECONDS = 300.0
CACHE_NAMESPACE = "lowcode:secrets:"
# Projects whose last written entry a process keeps in front of its memory cache.
MAX_WRITTEN_KEPT = 10_000


class SecretsProvider(Protocol):
    """Fetches one project's secrets; contributed through ``register_secrets_provider``."""

    async def fetch(self, project_id: str) -> Mapping[str, str]:
        """All secrets of the project (empty when it has none); raise when they cannot be had."""
        ...

    async def close(self) -> None: ...


class SecretsCache:
    """What handlers read secrets from (``call.secrets``): cached, shared, never logged.

    Entries are ``{"secrets": {...}, "fetchedAt": epoch seconds}``, kept in the backend for the
    TTL plus the stale window; whether one is fresh is decided from ``fetchedAt``, so processes
    sharing a Redis agree. Wall-clock time is used because the entry may cross processes.
    """

    # Known gap: with REDIS_URL the cached values sit in Redis as plain JSON, so Redis must be
    # guarded like the secrets API itself; encrypting them needs a key the operator manages.
    def __init__(
        self,
        provider: SecretsProvider | None,
        settings: Settings,
        breaker: Breaker | None = None,
    ) -> None:
        self.provider = provider
        self.ttl = settings.secrets_cache_ttl_ms / 1000
        self.cache = make_cache(settings.redis_url, CACHE_NAMESPACE)
        self.shared = bool(settings.redis_url)
        self.breaker = breaker or Breaker()
        self._inflight: dict[str, asyncio.Task[dict[str, str]]] = {}
        # The entries this process wrote. Without Redis only this process writes the cache,
        # so a fresh one is what reading the cache would give: kept here, it skips aiocache's
        # layers. With Redis they stand in for it while it fails.
        self._written: dict[str, dict[str, Any]] = {}

    async def get(self, project_id: str) -> Mapping[str, str]:
        """The project's secrets: fresh from the cache, else fetched once, else stale, else 503."""
        own_only = not self.shared or not self.breaker.allows()
        written = self._written.get(project_id) if own_only else None
        if written is not None and self._age(written) < self.ttl:
            child(SECRETS_CACHE, "hit").inc()
            return self._registered(project_id, written["secrets"])

        entry = written if own_only else await self._read(project_id)
        if entry is not None and self._age(entry) < self.ttl:
            child(SECRETS_CACHE, "hit").inc()
            return self._registered(project_id, entry["secrets"])

        child(SECRETS_CACHE, "miss").inc()
        try:
            return self._registered(project_id, await self._fetch_once(project_id))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return self._stale_or_fail(project_id, entry, e)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        self._inflight.clear()
        self._written.clear()
        try:
            if self.provider is not None:
                await self.provider.close()
        finally:
            await self.cache.close()

    async def _fetch_once(self, project_id: str) -> dict[str, str]:
        """Join the fetch already under way for this project, or start one.

        The fetch runs in its own task and waiters are shielded, so a caller that gives up (its
        deadline passed) does not cancel the fetch that other callers wait for.
        """
        task = self._inflight.get(project_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._fetch_and_store(project_id)
            )
            self._inflight[project_id] = task
            task.add_done_callback(lambda _: self._forget(project_id, task))
        return await asyncio.shield(task)

    def _forget(self, project_id: str, task: asyncio.Task[dict[str, str]]) -> None:
        if self._inflight.get(project_id) is task:
            del self._inflight[project_id]
        if not task.cancelled():
            task.exception()  # mark as retrieved: every waiter may have left already

    async def _fetch_and_store(self, project_id: str) -> dict[str, str]:
        if self.provider is None:
            raise errors.SecretsUnavailable("no secrets provider is installed")
        found = await self.provider.fetch(project_id)
        secrets = {str(k): str(v) for k, v in found.items()}
        register_secret(*secrets.values(), owner=project_id)
        registered_secrets.retire(project_id, secrets.values())
        _warn_of_short(project_id, secrets)
        await self._write(project_id, {"secrets": secrets, "fetchedAt": time.time()})
        return secrets

    def _stale_or_fail(
        self, project_id: str, entry: dict[str, Any] | None, error: Exception
    ) -> Mapping[str, str]:
        log = logger.bind(projectId=project_id, reason=_reason(error))
        if entry is not None and self._age(entry) < self.ttl + STALE_FOR_SECONDS:
            child(SECRETS_CACHE, "stale").inc()
            log.bind(
                event=events.SECRETS_STALE, ageMs=round(self._age(entry) * 1000)
            ).warning("secrets provider failed; serving the cached set past its TTL")
            return self._registered(project_id, entry["secrets"])

        log.bind(event=events.SECRETS_FETCH_FAILED).warning(
            "secrets provider failed and no usable cached set exists"
        )
        raise errors.SecretsUnavailable(
            "project secrets cannot be fetched right now and none is cached; retry later"
        ) from error

    async def _read(self, project_id: str) -> dict[str, Any] | None:
        """The cached entry, else this process's own; a cache that fails is let be a while."""
        try:
            entry = await self.cache.get(project_id)
        except Exception as e:
            self._cache_failed("read", e)
            return self._written.get(project_id)
        self.breaker.succeeded()
        if isinstance(entry, dict) and isinstance(entry.get("secrets"), dict):
            return entry
        return None

    async def _write(self, project_id: str, entry: dict[str, Any]) -> None:
        if len(self._written) >= MAX_WRITTEN_KEPT:
            self._written.clear()
        self._written[project_id] = entry
        if self.shared and not self.breaker.allows():
            return
        try:
            await self.cache.set(project_id, entry, ttl=self.ttl + STALE_FOR_SECONDS)
        except Exception as e:
            self._cache_failed("write", e)

    def _cache_failed(self, what: str, error: Exception) -> None:
        self.breaker.failed()
        logger.bind(
            event=events.SECRETS_CACHE_FAILED,
            operation=what,
            coolDownS=self.breaker.cool_down_s,
        ).warning(
            f"secrets cache {what} failed ({type(error).__name__}); this process keeps its own "
            f"sets and asks the cache again after {self.breaker.cool_down_s:g} s"
        )

    @staticmethod
    def _age(entry: dict[str, Any]) -> float:
        return max(0.0, time.time() - float(entry.get("fetchedAt", 0)))

    @staticmethod
    def _registered(project_id: str, secrets: Mapping[str, str]) -> Mapping[str, str]:
        # Register on every read: a set cached by another process is new to this one.
        register_secret(*secrets.values(), owner=project_id)
        return secrets


_short_warned: set[tuple[str, str]] = set()


def _warn_of_short(project_id: str, secrets: Mapping[str, str]) -> None:
    """Once per project and name: a value this short is not masked in log lines (it would
    mask ordinary words), though answers still redact it."""
    for name, value in secrets.items():
        if (
            0 < len(value) < MIN_SECRET_LENGTH
            and (project_id, name) not in _short_warned
        ):
            if len(_short_warned) >= MAX_WRITTEN_KEPT:
                _short_warned.clear()
            _short_warned.add((project_id, name))
            logger.bind(
                event=events.SECRETS_SHORT_VALUE, projectId=project_id, secret=name
            ).warning(
                f"secret {name!r} is shorter than {MIN_SECRET_LENGTH} characters: answers "
                "redact it, but log lines cannot mask it; give it a longer value"
            )


def _reason(error: Exception) -> str:
    """Our own errors' messages hold no secret; another provider's text is not trusted."""
    if isinstance(error, (SecretsFetchFailed, errors.RuntimeBackendError)):
        return str(error)
    return type(error).__name__
