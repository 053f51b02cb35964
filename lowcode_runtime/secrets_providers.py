"""The built-in secrets providers: the platform API, a local JSON file, and none at all.

Each only fetches; caching, the stale fallback and masking live in ``SecretsCache``. A provider
raises :class:`SecretsFetchFailed` (or any error) when the secrets cannot be had; the cache
turns that into a stale answer or ``SECRETS_UNAVAILABLE``. Error messages name the cause but
never a secret or the service's credentials.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from marshmallow import Schema, ValidationError, fields

from lowcode_runtime.config import Settings
from lowcode_runtime.http_client import make_session
from lowcode_runtime.masking import register_secret


class SecretsFetchFailed(Exception):
    """The provider could not get a project's secrets; the message says why, without values."""


class SecretsAnswerSchema(Schema):
    """What the secrets API answers: ``{"secrets": {NAME: value}}``; other keys are ignored."""

    class Meta:
        unknown = "exclude"

    secrets = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class SecretsFileSchema(Schema):
    """``SECRETS_FILE``: ``{projectId: {NAME: value}}``."""

    projects = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.String()),
    )


_answer_schema = SecretsAnswerSchema()
_file_schema = SecretsFileSchema()


class NoSecretsProvider:
    """Used when neither ``SECRETS_FILE`` nor ``API_BASE_URL`` is set: every project has none."""

    async def fetch(self, project_id: str) -> Mapping[str, str]:
        return {}

    async def close(self) -> None:
        return None


class FileSecretsProvider:
    """Reads ``SECRETS_FILE`` on each fetch (so edits apply once the cached set expires)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def fetch(self, project_id: str) -> Mapping[str, str]:
        projects = await asyncio.to_thread(self._load)
        return projects.get(project_id, {})

    async def close(self) -> None:
        return None

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as e:
            raise SecretsFetchFailed(
                f"SECRETS_FILE cannot be read ({e.strerror})"
            ) from None
        except ValueError:
            raise SecretsFetchFailed("SECRETS_FILE is not valid JSON") from None

        try:
            return _file_schema.load({"projects": raw})["projects"]
        except ValidationError:
            raise SecretsFetchFailed(
                "SECRETS_FILE must hold {projectId: {NAME: string value}}"
            ) from None


class ApiSecretsProvider:
    """``GET {API_BASE_URL}/internal/projects/{projectId}/secrets/runtime`` (API.md section 8).

    The session is opened on first use, inside the running loop, and closed by :meth:`close`.
    Past ``SECRETS_API_TIMEOUT_MS`` the request is aborted and counts as failed. The API is the
    operator's own service, so the egress policy of ``rest`` does not apply to it.
    """

    def __init__(self, settings: Settings) -> None:
        assert settings.api_base_url, "ApiSecretsProvider needs API_BASE_URL"
        self.base_url = settings.api_base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(
            total=settings.secrets_api_timeout_ms / 1000
        )
        self.headers: dict[str, str] = {"Accept": "application/json"}
        if settings.api_service_id:
            self.headers["X-Service-Id"] = settings.api_service_id
        if settings.api_service_secret:
            self.headers["Authorization"] = f"Bearer {settings.api_service_secret}"
            register_secret(settings.api_service_secret)
        self._session: aiohttp.ClientSession | None = None

    def url_for(self, project_id: str) -> str:
        return f"{self.base_url}/internal/projects/{quote(project_id, safe='')}/secrets/runtime"

    async def fetch(self, project_id: str) -> Mapping[str, str]:
        if self._session is None or self._session.closed:
            self._session = make_session(timeout=self.timeout, headers=self.headers)

        try:
            async with self._session.get(self.url_for(project_id)) as response:
                if response.status == 404:
                    return {}
                if response.status != 200:
                    raise SecretsFetchFailed(
                        f"secrets API answered HTTP {response.status}"
                    )
                body = await response.read()
        except TimeoutError:
            raise SecretsFetchFailed("secrets API did not answer in time") from None
        except aiohttp.ClientError as e:
            reason = type(e).__name__
            raise SecretsFetchFailed(
                f"secrets API cannot be reached ({reason})"
            ) from None

        return _parse_answer(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _parse_answer(body: bytes) -> dict[str, str]:
    try:
        answer: Any = json.loads(body)
        return _answer_schema.load(answer)["secrets"]
    except (ValueError, ValidationError):
        raise SecretsFetchFailed(
            "secrets API answered something other than {secrets}"
        ) from None
