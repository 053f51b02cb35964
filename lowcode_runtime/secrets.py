"""Project secrets (API.md section 8): the provider interface and the cache in front of it.

A provider only fetches. ``SecretsCache`` adds the TTL cache, one request for concurrent misses
of a project, the stale fallback and the registration of every value with the log masking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class SecretsProvider(Protocol):
    """Fetches one project's secrets; contributed through ``register_secrets_provider``."""

    async def fetch(self, project_id: str) -> Mapping[str, str]:
        """All secrets of the project (empty when it has none); raise when they cannot be had."""
        ...

    async def close(self) -> None: ...
