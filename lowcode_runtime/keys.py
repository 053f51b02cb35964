"""``web.AppKey`` constants for what the core keeps on the application."""

from __future__ import annotations

from aiohttp import web

from lowcode_runtime.config import Settings
from lowcode_runtime.plugins import PluginManager, RegisteredType
from lowcode_runtime.ratelimit import RateLimiter
from lowcode_runtime.secrets import SecretsCache

SETTINGS = web.AppKey("settings", Settings)
PLUGIN_MANAGER = web.AppKey("plugin_manager", PluginManager)
TYPE_REGISTRY: web.AppKey[dict[str, RegisteredType]] = web.AppKey("type_registry")
SECRETS = web.AppKey("secrets", SecretsCache)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
PLUGIN_ROUTES = web.AppKey("plugin_routes", dict)
"""Each route a plugin added (aiohttp's route object) -> its ``PluginRoute``."""
