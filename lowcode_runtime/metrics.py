"""Prometheus metrics of section 7, on a registry of the process (served by ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

CALLS = Counter(
    "lowcode_datasource_calls_total",
    "dataSource calls by type, operation and outcome",
    ["type", "operation", "outcome"],
    registry=REGISTRY,
)
CALL_DURATION = Histogram(
    "lowcode_datasource_call_duration_seconds",
    "dataSource call duration by type, operation and outcome",
    ["type", "operation", "outcome"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "lowcode_http_requests_total",
    "HTTP requests by route and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
MIGRATIONS = Counter(
    "lowcode_db_migrations_total",
    "db migrations by outcome (applied, blocked, failed)",
    ["outcome"],
    registry=REGISTRY,
)
SECRETS_CACHE = Counter(
    "lowcode_secrets_cache_total",
    "secrets cache lookups by result (hit, miss, stale)",
    ["result"],
    registry=REGISTRY,
)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
