"""A ``graphql`` dataSource type for lowcode-runtime, built only on the core's public API.

Registered through the entry point ``graphql = "lowcode_plugin_graphql"``; the hooks live in
:mod:`lowcode_plugin_graphql.plugin` and are re-exported here for pluggy.
"""

from lowcode_plugin_graphql.plugin import (
    GRAPHQL_CLIENT,
    handle,
    register_datasource_types,
    runtime_shutdown,
    runtime_startup,
)

__all__ = [
    "GRAPHQL_CLIENT",
    "handle",
    "register_datasource_types",
    "runtime_shutdown",
    "runtime_startup",
]
