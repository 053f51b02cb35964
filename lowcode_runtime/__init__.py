"""lowcode-runtime: runs a low-code app's dataSources on the server, in preview mode."""

__version__ = "0.1.0"

from lowcode_runtime.hookspecs import hookimpl  # noqa: E402
from lowcode_runtime.types import (  # noqa: E402
    Call,
    DataSourceType,
    Deadline,
    PluginInfo,
    Result,
)

__all__ = [
    "Call",
    "DataSourceType",
    "Deadline",
    "PluginInfo",
    "Result",
    "__version__",
    "hookimpl",
]
