"""Prometheus metrics of section 7, on a registry of the process (served by ``GET /metrics``)."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=True)

# The ``*_created`` series exist in one process only (the multiprocess collector has none),
# so a dashboard would see them come and go with WORKERS; and they double the scrape.
disable_created_metrics()

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


_children: dict[tuple[object, ...], Any] = {}


def child(metric: MetricWrapperBase, *labels: object) -> Any:
    """``metric.labels(*labels)``, looked up once per process and label set.

    ``labels()`` turns each label into text and takes a lock on every call; the label sets
    are few (types, operations, routes and statuses are bounded), so they are kept.
    """
    key = (id(metric), *labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def enable_multiprocess(directory: str) -> None:
    """Keep values in files under ``directory``, so that any worker's scrape sums them all.

    Called in the main process before workers fork. Every metric here has labels, and a
    labelled child takes its value class when first used, so children made after this call
    (all of them, in the workers) write to the shared files.
    """
    os.environ[MULTIPROCESS_ENV] = directory
    values.ValueClass = values.get_value_class()


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (summed over workers in multiprocess mode)."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
