"""The built-in secrets provider plugin.

Registered ``trylast``, so a plugin that answers ``register_secrets_provider`` (Vault, a cloud
secret manager) wins. The built-in choice, in order:

1. ``SECRETS_FILE`` set: the local JSON file ``{projectId: {NAME: value}}``;
2. ``API_BASE_URL`` set: the platform API of API.md section 8;
3. neither: a provider with no secrets, so a template naming one is ``SECRET_NOT_FOUND``.
"""

from __future__ import annotations

from lowcode_runtime.config import Settings
from lowcode_runtime.hookspecs import hookimpl
from lowcode_runtime.secrets import SecretsProvider
from lowcode_runtime.secrets_providers import (
    ApiSecretsProvider,
    FileSecretsProvider,
    NoSecretsProvider,
)


@hookimpl(trylast=True)
def register_secrets_provider(settings: Settings) -> SecretsProvider | None:
    if settings.secrets_file:
        return FileSecretsProvider(settings.secrets_file)
    if settings.api_base_url:
        return ApiSecretsProvider(settings)
    return NoSecretsProvider()
