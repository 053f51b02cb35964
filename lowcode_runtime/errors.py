"""One exception per contract error code (API.md section 3), each carrying its HTTP status.

Raise these anywhere; the middleware of ``lowcode_runtime.middleware.make_contract_middleware``
is the single place that turns them into the response envelope. Messages are for people and
must never hold a secret, a DSN, SQL text with values, or a traceback.
"""

from __future__ import annotations

import math
import warnings
from typing import Any


class RuntimeBackendError(Exception):
    """Base of every error the service answers with; ``code`` and ``status`` are the contract."""

    code: str = "INTERNAL"
    status: int = 500
    default_message: str = "internal error"
    # Merged into the envelope's ``meta`` (e.g. ``redacted`` when a secret was masked).
    meta: dict[str, Any] | None = None

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return error


class InvalidJson(RuntimeBackendError):
    code, status, default_message = (
        "INVALID_JSON",
        400,
        "request body is not valid JSON",
    )


class ValidationFailed(RuntimeBackendError):
    """``details`` is a list of ``{"path", "message"}``, every violation found."""

    code, status, default_message = "VALIDATION_FAILED", 400, "validation failed"

    @classmethod
    def from_messages(
        cls, messages: Any, prefix: str = "", message: str | None = None
    ) -> ValidationFailed:
        """Build from marshmallow's nested ``messages`` dict, flattened to dotted paths."""
        return cls.from_details(flatten_messages(messages, prefix), message)

    @classmethod
    def from_details(
        cls, details: list[dict[str, str]], message: str | None = None
    ) -> ValidationFailed:
        """Build from ``[{"path", "message"}]``; the message names the first few problems."""
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details[:5])
        if len(details) > 5:
            summary += f" (and {len(details) - 5} more)"
        return cls(message or summary or "validation failed", details)


class UnknownDataSourceType(RuntimeBackendError):
    code, status = "UNKNOWN_DATASOURCE_TYPE", 400
    default_message = "no installed plugin handles this dataSource type"


class UnsupportedOperation(RuntimeBackendError):
    code, status = "UNSUPPORTED_OPERATION", 400
    default_message = "this dataSource type has no such operation"


class Unauthorized(RuntimeBackendError):
    code, status = "UNAUTHORIZED", 401
    default_message = "missing bearer token: send 'Authorization: Bearer <token>'"


class Forbidden(RuntimeBackendError):
    code, status, default_message = "FORBIDDEN", 403, "the bearer token is not valid"


class EgressBlocked(RuntimeBackendError):
    code, status = "EGRESS_BLOCKED", 403
    default_message = "the upstream address is blocked by the egress policy"


class NotFound(RuntimeBackendError):
    code, status, default_message = "NOT_FOUND", 404, "not found"


class MethodNotAllowed(RuntimeBackendError):
    """Not a contract code of its own: a known route asked with the wrong method."""

    code, status, default_message = "NOT_FOUND", 405, "method not allowed on this route"


class Conflict(RuntimeBackendError):
    code, status, default_message = "CONFLICT", 409, "unique constraint violated"


class SchemaConflict(RuntimeBackendError):
    code, status = "SCHEMA_CONFLICT", 409
    default_message = "the preview schema belongs to another project"


class MigrationBlocked(RuntimeBackendError):
    code, status = "MIGRATION_BLOCKED", 409
    default_message = "the migration holds destructive changes, which are not allowed"


class PayloadTooLarge(RuntimeBackendError):
    code, status, default_message = (
        "PAYLOAD_TOO_LARGE",
        413,
        "request body is too large",
    )


class SecretNotFound(RuntimeBackendError):
    code, status = "SECRET_NOT_FOUND", 422
    default_message = "a template names a secret the project does not have"


DEFAULT_RETRY_AFTER_S = 5
"""The ``retry-after`` of a ``RateLimited`` raised without one (a plugin relaying a bare 429)."""


class RateLimited(RuntimeBackendError):
    """Takes ``(message, details)`` as every class does; ``retry_after`` in seconds, rounded up."""

    code, status, default_message = "RATE_LIMITED", 429, "too many requests"

    def __init__(
        self,
        message: str | None = None,
        details: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        if isinstance(message, int | float) and not isinstance(message, bool):
            # The former signature was RateLimited(retry_after, message).
            warnings.warn(
                "RateLimited(retry_after, message) is deprecated: use "
                "RateLimited(message, details, retry_after=seconds)",
                DeprecationWarning,
                stacklevel=2,
            )
            message, details, retry_after = details, None, message
        self.retry_after = _whole_seconds(retry_after)
        super().__init__(
            message or f"too many requests: retry in {self.retry_after} s", details
        )


def _whole_seconds(value: float | None) -> int:
    """A usable ``retry-after``: whole seconds, at least 1, the default when not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_RETRY_AFTER_S
    if not math.isfinite(value):
        return DEFAULT_RETRY_AFTER_S
    return max(1, math.ceil(value))


class Internal(RuntimeBackendError):
    code, status, default_message = "INTERNAL", 500, "internal error"


class MigrationFailed(RuntimeBackendError):
    code, status, default_message = (
        "MIGRATION_FAILED",
        500,
        "the migration was rejected",
    )


class UpstreamStatus(RuntimeBackendError):
    code, status, default_message = "UPSTREAM_STATUS", 502, "upstream answered an error"


class UpstreamUnreachable(RuntimeBackendError):
    code, status, default_message = (
        "UPSTREAM_UNREACHABLE",
        502,
        "upstream cannot be reached",
    )


class UpstreamResponseTooLarge(RuntimeBackendError):
    code, status = "UPSTREAM_RESPONSE_TOO_LARGE", 502
    default_message = "upstream body is over the size limit"


class UpstreamInvalidJson(RuntimeBackendError):
    code, status = "UPSTREAM_INVALID_JSON", 502
    default_message = "upstream body is not valid JSON"


class DbUnavailable(RuntimeBackendError):
    code, status = "DB_UNAVAILABLE", 503
    default_message = "the preview database cannot be reached"


class SecretsUnavailable(RuntimeBackendError):
    code, status = "SECRETS_UNAVAILABLE", 503
    default_message = "project secrets cannot be fetched and none is cached"


class Timeout(RuntimeBackendError):
    code, status, default_message = "TIMEOUT", 504, "the request deadline passed"


def _contract_classes() -> list[type[RuntimeBackendError]]:
    found: list[type[RuntimeBackendError]] = []
    pending: list[type[RuntimeBackendError]] = [RuntimeBackendError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == __name__:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


CONTRACT_PAIRS = frozenset((cls.code, cls.status) for cls in _contract_classes())
"""Every ``(code, status)`` the service answers with: the table of API.md section 3.

Computed once, here, so that checking an answer against it is one set lookup.
"""


def contract_base(cls: type[RuntimeBackendError]) -> type[RuntimeBackendError]:
    """The nearest class of this module, up ``cls``'s bases, that answers a contract pair."""
    for base in cls.__mro__:
        if (
            isinstance(base, type)
            and issubclass(base, RuntimeBackendError)
            and base.__module__ == __name__
            and (base.code, base.status) in CONTRACT_PAIRS
        ):
            return base
    return Internal


def flatten_messages(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn marshmallow's nested error messages into ``[{"path", "message"}]``."""
    found: list[dict[str, str]] = []

    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                path = prefix or "$"
            found.extend(flatten_messages(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        found.extend({"path": prefix or "$", "message": m} for m in messages)
    elif isinstance(messages, list):
        for item in messages:
            found.extend(flatten_messages(item, prefix))
    else:
        found.append({"path": prefix or "$", "message": str(messages)})

    return found
