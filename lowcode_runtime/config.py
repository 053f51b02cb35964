"""Configuration from the environment (API.md section 1), parsed and validated in one place.

``load_settings`` is the only reader of these variables. A malformed value raises
:class:`ConfigError` naming the variable; the command line turns it into exit code 2.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, validate
from marshmallow import fields as mf

from lowcode_runtime.shared_state import redis_options

LOG_LEVELS = ("trace", "debug", "info", "warning", "error")
EVENT_LOOPS = ("uvloop", "asyncio")


class ConfigError(Exception):
    """A variable holds a value it cannot take; the message names it and what it expects."""


class CommaList(mf.Field):
    """A comma-separated list of non-empty, stripped items."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> list[str]:
        if not isinstance(value, str):
            raise ValidationError("expected a comma-separated list")
        return [item.strip() for item in value.split(",") if item.strip()]


class OriginList(CommaList):
    """Origins as a browser writes them in ``Origin``: lower case, no trailing slash (one
    written ``https://App.example.com/`` would otherwise never match)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> list[str]:
        origins = super()._deserialize(value, attr, data, **kwargs)
        return [o.lower().removesuffix("/") if "://" in o else o for o in origins]


class LowerString(mf.String):
    """A keyword read case-insensitively (``INFO`` and ``info`` alike)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip().lower()


class EnvBoolean(mf.Boolean):
    """``true``/``false`` in any letter case, or ``1``/``0``: what the docs promise, no more
    (``yes`` or ``t`` is refused, not guessed)."""

    truthy = {"true", "1"}
    falsy = {"false", "0"}
    default_error_messages = {
        "invalid": "expected true or false (any letter case), or 1 or 0"
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> bool:
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


class BindHost(mf.String):
    """A bind address; an IPv6 one may come in brackets, as in URLs (``[::1]``)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> str:
        host = super()._deserialize(value, attr, data, **kwargs).strip()
        if host.startswith("[") and host.endswith("]") and ":" in host:
            return host[1:-1]
        return host


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$"
)


def _hosts_or_networks(items: list[str]) -> None:
    for item in items:
        if "/" in item or ":" in item or item.replace(".", "").isdigit():
            _networks([item])
        elif not _HOSTNAME.match(item):
            raise ValidationError(f"{item!r} is not a host name, IP address or CIDR")


def _bind_address(host: str) -> None:
    """An IP address, or a name that resolves now: a bad one fails here, named, not at bind."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
    except OSError as e:
        raise ValidationError(
            f"expected an IP address or a host name that resolves ({e.strerror or e})"
        ) from e
    except ValueError as e:  # too long a label, a NUL: what no resolver is even asked
        raise ValidationError("expected an IP address or a host name") from e


def _origins(items: list[str]) -> None:
    """``*`` alone, or origins as a browser sends them: ``https://host[:port]``, no path."""
    if not items:
        raise ValidationError("expected at least one origin, or *")
    for item in items:
        if item == "*":
            continue
        try:
            parts = urlsplit(item)
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
            parts = urlsplit("")
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not port_ok
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValidationError(
                f"{item!r} is not an origin: write it as a browser sends it, "
                "scheme://host[:port] with http or https and no path (https://app.example.com)"
            )


def _redis_url(url: str) -> None:
    try:
        redis_options(url)
    except ValueError as e:
        raise ValidationError(f"expected a redis:// or rediss:// URL: {e}") from e


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _header_value(value: str) -> None:
    """Sent in a header of every secrets request, where no control character may stand."""
    if _CONTROL.search(value):
        raise ValidationError(
            "must not hold a line break or other control character "
            "(a trailing newline read from a file?)"
        )


def _secrets_file(path: str) -> None:
    """The file must exist and hold a JSON object now; it is read again on each cache miss."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except OSError as e:
        raise ValidationError(f"cannot read the file ({e.strerror})") from e
    except ValueError as e:
        raise ValidationError("the file is not valid JSON") from e
    if not isinstance(content, dict):
        raise ValidationError("expected a JSON object {projectId: {NAME: value}}")


def _networks(items: list[str]) -> None:
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as e:
            raise ValidationError(f"{item!r} is not an IP address or CIDR") from e


class SettingsSchema(Schema):
    """Each field is one variable; ``data_key`` is its name, ``metadata`` documents it."""

    port = mf.Integer(
        data_key="PORT",
        load_default=3001,
        validate=validate.Range(min=0, max=65535),
        metadata={"doc": "HTTP port"},
    )
    host = BindHost(
        data_key="HOST",
        load_default="0.0.0.0",
        validate=_bind_address,
        metadata={
            "doc": "bind address: an IP address ([::1] too), or a host name that resolves"
        },
    )
    log_level = LowerString(
        data_key="LOG_LEVEL",
        load_default="info",
        validate=validate.OneOf(LOG_LEVELS),
        metadata={"doc": "trace, debug, info, warning, error"},
    )
    log_format = LowerString(
        data_key="LOG_FORMAT",
        load_default="json",
        validate=validate.OneOf(("json", "pretty")),
        metadata={"doc": "json (one object a line) or pretty"},
    )
    auth_token = mf.String(
        data_key="RUNTIME_BACKEND_AUTH_TOKEN",
        load_default=None,
        validate=validate.Regexp(
            r"^[\x21-\x7e]+$", error="expected printable characters without spaces"
        ),
        metadata={
            "secret": True,
            "doc": "service token for inbound calls; generated and logged once if unset",
        },
    )
    rate_limit_max = mf.Integer(
        data_key="RUNTIME_BACKEND_RATE_LIMIT_MAX",
        load_default=300,
        validate=validate.Range(min=1, error="expected a positive integer"),
        metadata={"doc": "requests per window per key"},
    )
    rate_limit_window_ms = mf.Integer(
        data_key="RUNTIME_BACKEND_RATE_LIMIT_WINDOW_MS",
        load_default=60000,
        validate=validate.Range(min=1, error="expected a positive integer"),
        metadata={"doc": "rate-limit window in milliseconds"},
    )
    request_timeout_ms = mf.Integer(
        data_key="RUNTIME_BACKEND_REQUEST_TIMEOUT_MS",
        load_default=30000,
        validate=validate.Range(min=1, error="expected a positive integer"),
        metadata={"doc": "deadline of one request, end to end, in milliseconds"},
    )
    body_limit_bytes = mf.Integer(
        data_key="RUNTIME_BACKEND_BODY_LIMIT_BYTES",
        load_default=1048576,
        validate=validate.Range(min=1, error="expected a positive integer"),
        metadata={"doc": "largest request body in bytes"},
    )
    cors_origins = OriginList(
        data_key="RUNTIME_BACKEND_CORS_ORIGINS",
        load_default=lambda: ["*"],
        validate=_origins,
        metadata={
            "doc": "comma-separated allowed origins (https://host[:port]), * for any"
        },
    )
    trusted_proxies = CommaList(
        data_key="RUNTIME_BACKEND_TRUSTED_PROXIES",
        load_default=list,
        validate=_networks,
        metadata={"doc": "addresses or CIDRs whose X-Forwarded-For is believed"},
    )
    egress_allow = CommaList(
        data_key="RUNTIME_BACKEND_EGRESS_ALLOW",
        load_default=list,
        validate=_hosts_or_networks,
        metadata={"doc": "hosts or CIDRs that rest may reach although private"},
    )
    rest_max_response_bytes = mf.Integer(
        data_key="RUNTIME_BACKEND_REST_MAX_RESPONSE_BYTES",
        load_default=10485760,
        validate=validate.Range(min=1, error="expected a positive integer"),
        metadata={"doc": "largest upstream body read, decoded, in bytes"},
    )
    event_loop = LowerString(
        data_key="RUNTIME_BACKEND_EVENT_LOOP",
        load_default="uvloop",
        validate=validate.OneOf(EVENT_LOOPS),
        metadata={
            "doc": "uvloop (the faster; asyncio where it is not installed) or asyncio"
        },
    )
    redis_url = mf.String(
        data_key="REDIS_URL",
        load_default=None,
        validate=[
            validate.Regexp(
                r"^rediss?://", error="expected a redis:// or rediss:// URL"
            ),
            _redis_url,
        ],
        metadata={
            "secret": True,
            "doc": "share rate-limit counters and the secrets cache through Redis",
        },
    )
    database_url = mf.String(
        data_key="DATABASE_URL",
        load_default=None,
        metadata={
            "secret": True,
            "doc": "preview PostgreSQL; embedded PostgreSQL when unset",
        },
    )
    database_pool_max = mf.Integer(
        data_key="DATABASE_POOL_MAX",
        load_default=10,
        validate=validate.Range(min=1, error="expected a positive integer"),
        metadata={"doc": "database connections per process"},
    )
    allow_destructive_migrations = EnvBoolean(
        data_key="PREVIEW_ALLOW_DESTRUCTIVE_MIGRATIONS",
        load_default=False,
        metadata={
            "doc": "allow destructive db migrations (true/false, any case, or 1/0)"
        },
    )
    apply_seeds = EnvBoolean(
        data_key="PREVIEW_APPLY_SEEDS",
        load_default=False,
        metadata={
            "doc": "apply seeds of db dataSources (true/false, any case, or 1/0)"
        },
    )
    api_base_url = mf.Url(
        data_key="API_BASE_URL",
        load_default=None,
        require_tld=False,
        schemes={"http", "https"},
        metadata={"doc": "platform API that holds project secrets"},
    )
    api_service_id = mf.String(
        data_key="API_SERVICE_ID",
        load_default=None,
        validate=_header_value,
        metadata={"doc": "this service's id at that API"},
    )
    api_service_secret = mf.String(
        data_key="API_SERVICE_SECRET",
        load_default=None,
        validate=_header_value,
        metadata={"secret": True, "doc": "this service's secret at that API"},
    )
    secrets_cache_ttl_ms = mf.Integer(
        data_key="SECRETS_CACHE_TTL_MS",
        load_default=60000,
        validate=validate.Range(min=0, error="expected 0 or a positive integer"),
        metadata={"doc": "how long fetched secrets are reused, in milliseconds"},
    )
    secrets_api_timeout_ms = mf.Integer(
        data_key="SECRETS_API_TIMEOUT_MS",
        load_default=5000,
        validate=validate.Range(min=1, error="expected a positive integer"),
        metadata={"doc": "longest wait for the secrets API, in milliseconds"},
    )
    secrets_file = mf.String(
        data_key="SECRETS_FILE",
        load_default=None,
        validate=_secrets_file,
        metadata={
            "doc": "JSON file {projectId: {NAME: value}} used instead of the API"
        },
    )


@dataclass(frozen=True)
class Settings:
    port: int = 3001
    host: str = "0.0.0.0"
    log_level: str = "info"
    log_format: str = "json"
    auth_token: str | None = None
    rate_limit_max: int = 300
    rate_limit_window_ms: int = 60000
    request_timeout_ms: int = 30000
    body_limit_bytes: int = 1048576
    cors_origins: tuple[str, ...] = ("*",)
    trusted_proxies: tuple[str, ...] = ()
    egress_allow: tuple[str, ...] = ()
    rest_max_response_bytes: int = 10485760
    event_loop: str = "uvloop"
    redis_url: str | None = None
    database_url: str | None = None
    database_pool_max: int = 10
    allow_destructive_migrations: bool = False
    apply_seeds: bool = False
    api_base_url: str | None = None
    api_service_id: str | None = None
    api_service_secret: str | None = None
    secrets_cache_ttl_ms: int = 60000
    secrets_api_timeout_ms: int = 5000
    secrets_file: str | None = None

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


SECRET_VARIABLES = frozenset(
    field.data_key
    for field in SettingsSchema().fields.values()
    if field.metadata.get("secret") and field.data_key
)


def variables() -> dict[str, tuple[str, Any, str]]:
    """Each variable's name mapped to (attribute, default, doc), for docs and `.env.example`."""
    schema = SettingsSchema()
    found: dict[str, tuple[str, Any, str]] = {}
    for attr, field in schema.fields.items():
        default = field.load_default
        default = default() if callable(default) else default
        found[field.data_key or attr] = (attr, default, field.metadata.get("doc", ""))
    return found


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Parse the variables of ``environ``; ``overrides`` (command-line flags) win over them."""
    schema = SettingsSchema()
    known = {f.data_key for f in schema.fields.values()}
    # An empty variable means "unset" for optional values, as in most deployment tools.
    raw = {k: v for k, v in environ.items() if k in known and v != ""}
    # A flag replaces its variable before validation, so it also stands in for a bad one.
    names = {attr: f.data_key or attr for attr, f in schema.fields.items()}
    flags = {
        names[k]: "--" + k.replace("_", "-")
        for k, v in overrides.items()
        if v is not None
    }
    raw.update({names[k]: str(v) for k, v in overrides.items() if v is not None})

    try:
        loaded = schema.load(raw)
    except ValidationError as e:
        name, problems = next(iter(e.normalized_messages().items()))
        problem = problems[0] if isinstance(problems, list) else problems
        # A secret's value is never echoed, not even a malformed one.
        shown = "" if name in SECRET_VARIABLES else f"={raw.get(name, '')!r}"
        # A value given by a flag is named by the flag, where the operator will look for it.
        raise ConfigError(
            f"{flags.get(name, name)}{shown} is invalid: {problem}"
        ) from None

    for key in ("cors_origins", "trusted_proxies", "egress_allow"):
        loaded[key] = tuple(loaded[key])
    return Settings(**loaded)
