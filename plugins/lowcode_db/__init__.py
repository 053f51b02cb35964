"""The built-in ``db`` dataSource type: CRUD over a project's preview PostgreSQL schema.

Registered through the entry point ``db = "lowcode_db"``; the hooks live in
:mod:`lowcode_db.plugin` and are re-exported here, where pluggy looks for them.
"""

from lowcode_db.plugin import (
    register_commands,
    register_datasource_types,
    register_routes,
    runtime_readiness,
    runtime_service_resources,
    runtime_shutdown,
    runtime_startup,
)

__all__ = [
    "register_commands",
    "register_datasource_types",
    "register_routes",
    "runtime_readiness",
    "runtime_service_resources",
    "runtime_shutdown",
    "runtime_startup",
]
