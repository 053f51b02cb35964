"""The built-in ``rest`` dataSource plugin: outbound HTTP with templates, secrets and egress checks.

Registered through the entry point ``rest = "lowcode_rest"``, like any third-party plugin; the
hook implementations live in :mod:`lowcode_rest.plugin` and are re-exported here for pluggy.
"""

from lowcode_rest.plugin import (
    REST_CLIENT,
    handle,
    register_datasource_types,
    runtime_shutdown,
    runtime_startup,
)

__all__ = [
    "REST_CLIENT",
    "handle",
    "register_datasource_types",
    "runtime_shutdown",
    "runtime_startup",
]
